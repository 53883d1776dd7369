package web

import (
	"context"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/go-chi/chi/v5"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Page sizes.
const (
	recentReleases = 20
	searchResults  = 50
	maxQuery       = 100 // characters of a search
	historyEntries = 100
)

func (u *UI) head() (Head, error) {
	h, ok := u.src.Head()
	if !ok {
		return h, api.Errorf(api.CodeNotBootstrapped, "the server has loaded no published metadata yet; try again in a few seconds")
	}
	return h, nil
}

type homeData struct {
	Head       Head
	Roles      []api.RoleExpiry
	Warnings   int
	Published  string
	Projects   int64
	Recent     []store.RecentRelease
	Query      string
	TlogConfig bool
}

// home: search, recently published releases and the repository's health. Everything on
// it changes only with a publish (or, for expiry warnings, with the clock), so it is
// served from the page cache keyed by the head and the minute.
func (u *UI) home(w http.ResponseWriter, r *http.Request) {
	h, err := u.head()
	if err != nil {
		u.fail(w, r, err)
		return
	}
	fp := fmt.Sprintf("%d.%d.%d.%s", h.Timestamp, h.Snapshot, h.Root, u.now().UTC().Format("200601021504"))
	u.cached(w, r, fp, func() (string, page, error) {
		ctx := r.Context()
		d := homeData{Head: h, Roles: u.src.Status(), TlogConfig: u.cfg.TlogURL != ""}
		for _, e := range d.Roles {
			if e.Warning != "" {
				d.Warnings++
			}
		}
		at, err := u.db.PublishedAt(ctx)
		if err != nil {
			return "", page{}, err
		}
		d.Published = fmtTime(at)
		if d.Projects, err = u.db.EstimatedProjects(ctx); err != nil {
			return "", page{}, err
		}
		if d.Recent, err = u.db.RecentReleases(ctx, recentReleases); err != nil {
			return "", page{}, err
		}
		return "home", page{Title: "Cairn", Kind: "home", Data: d}, nil
	})
}

type searchData struct {
	Query   string
	Matches []store.ProjectMatch
	Exact   bool
	More    bool
}

// search finds projects by name prefix (PEP 503 canonical form, so "my_lib" finds
// "my-lib").
func (u *UI) search(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if utf8.RuneCountInString(q) > maxQuery {
		u.fail(w, r, api.Errorf(api.CodeBadRequest, "the search text is %d characters; project names have at most %d", utf8.RuneCountInString(q), tufrepo.MaxNameLength))
		return
	}
	d := searchData{Query: q}
	if q != "" {
		ms, err := u.db.SearchProjects(r.Context(), q, searchResults+1)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		if len(ms) > searchResults {
			ms, d.More = ms[:searchResults], true
		}
		d.Matches = ms
		d.Exact = len(ms) > 0 && tufrepo.CanonicalProjectName(ms[0].Name) == tufrepo.CanonicalProjectName(q)
	}
	title := "Search"
	if q != "" {
		title = "Search: " + q
	}
	u.render(w, r, http.StatusOK, "search", page{Title: title, Kind: "search", Data: d, NoIndex: true})
}

// maintainerView is one maintainer key.
type maintainerView struct {
	KeyID, KeyType, Scheme, Fingerprint string
}

type proposalView struct {
	Kind      string
	Version   int64
	Signed    int
	Threshold int
	SignedBy  []string
	Proposer  string
	Created   string
	Expires   string
	Lines     []string
	Error     string
	Command   string
}

type historyView struct {
	Version   int64
	Status    string
	Threshold int
	Keys      []maintainerView
	At        string
}

type projectData struct {
	Project     *api.Project
	Maintainers []maintainerView
	Claimed     bool
	Meaning     string
	Releases    []api.Release
	// ReleaseRows is the releases table's body, written directly: a project may have
	// thousands of releases, and the template engine's reflection was most of the cost of
	// rendering the page (BENCHMARKS.md, "Web UI").
	ReleaseRows template.HTML
	Proposals   []proposalView
	History     []historyView
	Head        Head
	// Links are the homepage and repository the maintainers declared in the published role.
	Links tufrepo.ProjectLinks
}

// project: maintainers, threshold, the delegation that vouches for it, releases,
// pending proposals and maintainer history. Cached by the project's state fingerprint.
func (u *UI) project(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if err := tufrepo.ValidateProjectName(name); err != nil {
		u.fail(w, r, api.Errorf(api.CodeNotFound, "there is no project %q: %s", name, api.ProblemFor(err).Detail))
		return
	}
	h, err := u.head()
	if err != nil {
		u.fail(w, r, err)
		return
	}
	ctx := r.Context()
	st, err := u.db.ProjectState(ctx, name, u.now())
	if err != nil {
		u.fail(w, r, err)
		return
	}
	fp := fmt.Sprintf("%s.%d.%d", st, h.Snapshot, h.Timestamp)
	u.cached(w, r, fp, func() (string, page, error) {
		d, err := u.projectData(ctx, name, h)
		if err != nil {
			return "", page{}, err
		}
		return "project", page{Title: name, Kind: "project", Data: d}, nil
	})
}

func (u *UI) projectData(ctx context.Context, name string, h Head) (*projectData, error) {
	p, err := u.db.GetProject(ctx, name)
	if err != nil {
		return nil, err
	}
	d := &projectData{Project: p, Head: h, Claimed: p.Delegator == tufrepo.RoleClaimed}
	d.Meaning = client.MeaningRecentlyClaimed
	if d.Claimed {
		d.Meaning = client.MeaningClaimed
	}
	for _, m := range p.Maintainers {
		d.Maintainers = append(d.Maintainers, maintainerView{KeyID: m.KeyID, KeyType: m.KeyType, Scheme: m.Scheme, Fingerprint: m.Fingerprint})
	}
	rl, err := u.db.ReleasesUnflagged(ctx, name)
	if err != nil {
		return nil, err
	}
	if p.PublishedVersion > 0 {
		// Yank flags as clients see them: from the published role, parsed once per version.
		pr, err := u.load(ctx, name, p.PublishedVersion)
		if err != nil {
			return nil, err
		}
		for i := range rl.Releases {
			if rl.Releases[i].Published {
				rl.Releases[i].Yanked, rl.Releases[i].YankReason = yankOf(pr.targets, rl.Releases[i].Files)
			}
		}
		d.Links = client.ProjectLinksOf(pr.targets)
	}
	d.Releases = rl.Releases
	d.ReleaseRows = releaseRows(rl.Releases)
	pl, err := u.db.Proposals(ctx, name, u.now())
	if err != nil {
		return nil, err
	}
	if len(pl.Proposals) > 0 {
		d.Proposals = u.proposalViews(ctx, p, pl.Proposals)
	}
	hist, err := u.db.MaintainerHistory(ctx, name, historyEntries)
	if err != nil {
		return nil, err
	}
	for _, c := range hist {
		hv := historyView{Version: c.Version, Status: c.Status, Threshold: c.Threshold, At: fmtTime(c.CreatedAt)}
		for _, id := range c.KeyIDs {
			mv := maintainerView{KeyID: id}
			if k, ok := c.Keys[id]; ok {
				mv.KeyType, mv.Scheme = k.KeyType, k.Scheme
				if tk, err := tufrepo.KeyFromAPI(k); err == nil {
					mv.Fingerprint, _ = tufrepo.Fingerprint(tk)
				}
			}
			hv.Keys = append(hv.Keys, mv)
		}
		d.History = append(d.History, hv)
	}
	return d, nil
}

// proposalViews says what each open proposal changes, as `cairn sign` does: a role version
// against the published role, a maintainer change against the current maintainers.
func (u *UI) proposalViews(ctx context.Context, p *api.Project, ps []api.Proposal) []proposalView {
	var current *metadata.Metadata[metadata.TargetsType]
	if p.PublishedVersion > 0 {
		if raw, err := u.src.Metadata(ctx, p.Name, p.PublishedVersion); err == nil {
			current, _ = metadata.Targets().FromBytes(raw)
		}
	}
	set := client.MaintainerSet{Keys: map[string]*metadata.Key{}, Threshold: p.Threshold}
	for _, m := range p.Maintainers {
		var k api.Key
		k.KeyType, k.Scheme, k.KeyVal.Public = m.KeyType, m.Scheme, m.Public
		if tk, err := tufrepo.KeyFromAPI(k); err == nil {
			set.Keys[m.KeyID] = tk
		}
	}
	var out []proposalView
	for _, pr := range ps {
		v := proposalView{Kind: pr.Kind, Version: pr.Version, Signed: len(pr.SignedBy), Threshold: pr.Threshold, SignedBy: pr.SignedBy,
			Proposer: pr.ProposedBy, Created: fmtTime(pr.CreatedAt), Expires: fmtTime(pr.ExpiresAt), Command: "cairn sign " + p.Name + " --key KEYNAME"}
		switch pr.Kind {
		case api.KindMaintainers:
			c, err := client.ParseMaintainerProposal(pr)
			if err != nil {
				v.Error = api.ProblemFor(err).Detail
				break
			}
			v.Lines = client.DiffMaintainers(p.Name, pr.Version, set, c.Set).Lines()
		default:
			md, err := client.ParseProposal(pr)
			if err != nil {
				v.Error = api.ProblemFor(err).Detail
				break
			}
			from := current
			if from == nil {
				from = metadata.Targets()
				from.Signed.Version = 0
			}
			v.Lines = client.DiffRoles(p.Name, from, md).Lines()
		}
		out = append(out, v)
	}
	return out
}

type releaseData struct {
	Project  *api.Project
	Release  api.Release
	Meaning  string
	Claimed  bool
	Command  string
	OCIRef   string
	Chain    []chainLink
	ChainErr string
	Files    []fileView
	// Attested counts the files with attestations.
	Attested int
}

type fileView struct {
	api.File
	URL string
	// Attestations are the first page of the file's attestations, as the server stores
	// them, with their summary; MoreAttestations says the page is not all of them.
	Attestations     []api.Attestation
	Summary          *api.AttestationSummary
	MoreAttestations bool
}

// attestationsShown bounds the attestations a release page lists per file; the summary
// counts them all, and `cairn attestations` fetches every one.
const attestationsShown = 20

// release: files with size, sha256 and download links, the `cairn get` command, the OCI
// reference, and the chain of signed metadata that vouches for the release, found by
// walking the delegations from targets as a client does.
func (u *UI) release(w http.ResponseWriter, r *http.Request) {
	name, version := chi.URLParam(r, "name"), chi.URLParam(r, "version")
	if err := tufrepo.ValidateProjectName(name); err != nil {
		u.fail(w, r, api.Errorf(api.CodeNotFound, "there is no project %q", name))
		return
	}
	if err := tufrepo.ValidateComponent("version", version, tufrepo.MaxVersionLength); err != nil {
		u.fail(w, r, api.Errorf(api.CodeNotFound, "project %s has no release %q", name, version))
		return
	}
	h, err := u.head()
	if err != nil {
		u.fail(w, r, err)
		return
	}
	ctx := r.Context()
	st, err := u.db.ProjectState(ctx, name, u.now())
	if err != nil {
		u.fail(w, r, err)
		return
	}
	fp := fmt.Sprintf("%s.%d.%d.%s", st, h.Snapshot, h.Timestamp, u.now().UTC().Format("2006010215"))
	u.cached(w, r, fp, func() (string, page, error) {
		p, err := u.db.GetProject(ctx, name)
		if err != nil {
			return "", page{}, err
		}
		rel, err := u.db.ReleaseFiles(ctx, name, version)
		if err != nil {
			return "", page{}, err
		}
		d := &releaseData{Project: p, Claimed: p.Delegator == tufrepo.RoleClaimed, Release: *rel}
		if rel.Published && p.PublishedVersion > 0 {
			// The yank flag as clients see it: from the published role (parsed once per
			// version by the role cache).
			if pr, err := u.load(ctx, name, p.PublishedVersion); err == nil {
				d.Release.Yanked, d.Release.YankReason = yankOf(pr.targets, rel.Files)
			}
		}
		d.Meaning = client.MeaningRecentlyClaimed
		if d.Claimed {
			d.Meaning = client.MeaningClaimed
		}
		base := u.base(r)
		d.Command = "cairn get " + name + "@" + version + " -o ."
		if bu, err := url.Parse(base); err == nil {
			d.OCIRef = bu.Host + "/" + name + ":" + api.ReleaseTag(version)
		}
		for _, f := range d.Release.Files {
			fv := fileView{File: f, URL: "/targets/" + name + "/" + version + "/" + f.SHA256 + "." + f.Name}
			if d.Release.Published {
				if err := u.attestationsOf(ctx, &fv); err != nil {
					return "", page{}, err
				}
				if fv.Summary != nil {
					d.Attested++
				}
			}
			d.Files = append(d.Files, fv)
		}
		if len(d.Release.Files) > 0 && d.Release.Published {
			chain, err := u.chain(ctx, h, d.Release.Files[0].Path)
			if err != nil {
				u.log.Warn("walking the delegations for a release page", "project", name, "version", version, "err", err)
				d.ChainErr = api.ProblemFor(err).Detail
			}
			d.Chain = chain
		}
		return "release", page{Title: name + " " + version, Kind: "release", Data: d}, nil
	})
}

// attestationsOf fills in a published file's attestations (none: left empty). A post
// makes the publisher sign the attestation index, which moves the snapshot, so the page
// cache's fingerprint changes with them.
func (u *UI) attestationsOf(ctx context.Context, fv *fileView) error {
	atts, err := u.db.Attestations(ctx, fv.SHA256, 0, attestationsShown+1)
	if err != nil {
		return fmt.Errorf("listing the attestations of %s: %w", fv.Path, err)
	}
	if len(atts) == 0 {
		return nil
	}
	if len(atts) > attestationsShown {
		atts, fv.MoreAttestations = atts[:attestationsShown], true
	}
	sum, err := u.db.AttestationSummary(ctx, fv.SHA256)
	if err != nil {
		return fmt.Errorf("summarising the attestations of %s: %w", fv.Path, err)
	}
	fv.Attestations, fv.Summary = atts, sum
	return nil
}

// trust: how the browser's pinned root works, with the pinning form (the script fills it).
func (u *UI) trust(w http.ResponseWriter, r *http.Request) {
	h, err := u.head()
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.cached(w, r, fmt.Sprint(h.Root), func() (string, page, error) {
		return "trust", page{Title: "Pin this repository's root", Kind: "trust", Data: h}, nil
	})
}

// browse: the generic TUF repository browser. Everything happens in the browser; the
// page carries no repository data, and its CSP lets the script fetch from any origin.
func (u *UI) browse(w http.ResponseWriter, r *http.Request) {
	u.render(w, r, http.StatusOK, "browse", page{Title: "Browse a TUF repository", Kind: "browse", Data: r.URL.Query().Get("url"), NoIndex: true})
}

// yankOf reads the yank flag of a release from its files' signed custom data, as every
// reader does (tufrepo.ReleaseYank).
func yankOf(md *metadata.Metadata[metadata.TargetsType], files []api.File) (bool, string) {
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	return tufrepo.ReleaseYank(md.Signed.Targets, paths)
}

// releaseRows writes the rows of the releases table; every value goes through
// html.EscapeString (attributes) or userText (text), as the template would escape it.
func releaseRows(rels []api.Release) template.HTML {
	var b strings.Builder
	b.Grow(len(rels) * 400)
	esc := html.EscapeString
	for _, r := range rels {
		fmt.Fprintf(&b, `<tr data-release="%s" data-yanked="%t" data-files="%d"><th scope="row">`, esc(r.Version), r.Yanked, len(r.Files))
		if r.Published {
			fmt.Fprintf(&b, `<a href="/projects/%s/%s">%s</a>`, url.PathEscape(r.Project), url.PathEscape(r.Version), userText(r.Version))
		} else {
			b.WriteString(string(userText(r.Version)))
		}
		fmt.Fprintf(&b, `</th><td>%d</td><td>%s</td><td>`, len(r.Files), fmtTime(r.UploadedAt))
		switch {
		case !r.Published:
			b.WriteString(`<span class="muted">staged, not published yet</span>`)
		case r.Yanked && r.YankReason != "":
			b.WriteString(`<span class="yanked">yanked</span>: ` + string(userText(r.YankReason)))
		case r.Yanked:
			b.WriteString(`<span class="yanked">yanked</span> (no reason given)`)
		default:
			b.WriteString("published")
		}
		b.WriteString(`</td><td class="v"><span class="badge unverified">not verified</span></td></tr>` + "\n")
	}
	return template.HTML(b.String())
}
