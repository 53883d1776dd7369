package client

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/textfmt"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Keys of a target's custom data that Cairn gives a meaning to.
const (
	CustomVersion    = tufrepo.CustomVersion
	CustomYanked     = tufrepo.CustomYanked
	CustomYankReason = tufrepo.CustomYankReason
)

// MaxYankReason bounds a yank reason, in characters; it travels in every file's custom
// data, which the server bounds to tufrepo.MaxCustomBytes.
const MaxYankReason = 500

// AddedRelease is a release, or files of an existing release, that a role version adds.
type AddedRelease struct {
	Version string     `json:"version"`
	Files   []api.File `json:"files"` // only the files added, by name
	// Existing is set when the release was already published and the version adds files
	// to it.
	Existing bool `json:"existing,omitempty"`
	// Yanked is set when the added files are flagged yanked already.
	Yanked bool `json:"yanked,omitempty"`
}

// YankChange is a release whose files a role version yanks or unyanks.
type YankChange struct {
	Version string   `json:"version"`
	Files   []string `json:"files"` // names
	Reason  string   `json:"reason,omitempty"`
	// PreviousReason is the reason given before, for a change of reason.
	PreviousReason string `json:"previous_reason,omitempty"`
}

// CustomChange is a published file whose custom data changes other than by yanking.
type CustomChange struct {
	Path   string   `json:"path"`
	Fields []string `json:"fields"` // the top-level keys added, removed or changed
}

// ChangedFile is a published file whose length or hashes a role version changes, which
// Cairn never allows.
type ChangedFile struct {
	Path   string   `json:"path"`
	Before api.File `json:"before"`
	After  api.File `json:"after"`
}

// RoleChanges is what one version of a project role changes compared with another, in
// terms a maintainer can review.
type RoleChanges struct {
	Project     string `json:"project"`
	FromVersion int64  `json:"from_version"` // 0 for a new project
	ToVersion   int64  `json:"to_version"`

	Added         []AddedRelease `json:"added,omitempty"`
	Yanked        []YankChange   `json:"yanked,omitempty"`
	Unyanked      []YankChange   `json:"unyanked,omitempty"`
	ReasonChanged []YankChange   `json:"yank_reason_changed,omitempty"`
	CustomChanged []CustomChange `json:"custom_changed,omitempty"`
	// Removed and Modified are published files the version drops or alters: a proposal
	// with either must never be signed (CheckProposal refuses it).
	Removed  []api.File    `json:"removed,omitempty"`
	Modified []ChangedFile `json:"modified,omitempty"`

	ExpiresBefore time.Time `json:"expires_before,omitzero"`
	ExpiresAfter  time.Time `json:"expires_after"`
	// Other lists any other difference, in words.
	Other []string `json:"other,omitempty"`
}

// Empty reports whether the version changes nothing but its version and expiry.
func (c *RoleChanges) Empty() bool {
	return len(c.Added) == 0 && len(c.Yanked) == 0 && len(c.Unyanked) == 0 && len(c.ReasonChanged) == 0 &&
		len(c.CustomChanged) == 0 && len(c.Removed) == 0 && len(c.Modified) == 0 && len(c.Other) == 0
}

// fileOf describes a target as a release file.
func fileOf(project, path string, tf *metadata.TargetFiles) api.File {
	f := api.File{Path: path, Name: path, Length: tf.Length}
	if _, name, err := tufrepo.SplitTargetPath(project, path); err == nil {
		f.Name = name
	}
	if h, ok := tf.Hashes["sha256"]; ok {
		f.SHA256 = hex.EncodeToString(h)
	}
	return f
}

// customObject decodes a target's custom data as a JSON object; nil custom is empty.
func customObject(tf *metadata.TargetFiles) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	if tf == nil || tf.Custom == nil || len(bytes.TrimSpace(*tf.Custom)) == 0 || string(bytes.TrimSpace(*tf.Custom)) == "null" {
		return out, nil
	}
	if err := json.Unmarshal(*tf.Custom, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// yankState reads the yanked flag and reason from a target's custom data.
func yankState(tf *metadata.TargetFiles) (bool, string) {
	if tf == nil || tf.Custom == nil {
		return false, ""
	}
	return tufrepo.ReadYank(*tf.Custom)
}

// sameJSON compares two JSON values by meaning.
func sameJSON(a, b json.RawMessage) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return bytes.Equal(a, b)
	}
	ca, err1 := tufrepo.Canonical(va)
	cb, err2 := tufrepo.Canonical(vb)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

// customFieldsChanged lists the top-level keys of custom data that differ, and whether
// the custom data of either side is not a JSON object.
func customFieldsChanged(before, after *metadata.TargetFiles) ([]string, bool) {
	b, err1 := customObject(before)
	a, err2 := customObject(after)
	if err1 != nil || err2 != nil {
		var rb, ra json.RawMessage
		if before.Custom != nil {
			rb = *before.Custom
		}
		if after.Custom != nil {
			ra = *after.Custom
		}
		if len(rb) == len(ra) && (len(rb) == 0 || sameJSON(rb, ra)) {
			return nil, false
		}
		return nil, true
	}
	var fields []string
	for k := range maps.Keys(b) {
		if v, ok := a[k]; !ok || !sameJSON(b[k], v) {
			fields = append(fields, k)
		}
	}
	for k := range maps.Keys(a) {
		if _, ok := b[k]; !ok {
			fields = append(fields, k)
		}
	}
	slices.Sort(fields)
	return fields, false
}

func sameHashes(a, b metadata.Hashes) bool {
	if len(a) != len(b) {
		return false
	}
	for alg, h := range a {
		if !bytes.Equal(h, b[alg]) {
			return false
		}
	}
	return true
}

// DiffRoles describes what proposed changes compared with current, the verified role
// (nil for a project that has none yet). It only describes: CheckProposal decides whether
// the change may be signed.
func DiffRoles(project string, current, proposed *metadata.Metadata[metadata.TargetsType]) RoleChanges {
	c := RoleChanges{Project: project, ToVersion: proposed.Signed.Version, ExpiresAfter: proposed.Signed.Expires.UTC()}
	old := map[string]*metadata.TargetFiles{}
	if current != nil {
		c.FromVersion = current.Signed.Version
		c.ExpiresBefore = current.Signed.Expires.UTC()
		old = current.Signed.Targets
	}
	oldReleases := map[string]bool{}
	for p := range old {
		if v, _, err := tufrepo.SplitTargetPath(project, p); err == nil {
			oldReleases[v] = true
		}
	}

	added := map[string]*AddedRelease{}
	yanked := map[string]*YankChange{}
	unyanked := map[string]*YankChange{}
	reasons := map[string]*YankChange{}
	group := func(m map[string]*YankChange, version, name, reason, previous string) {
		y := m[version]
		if y == nil {
			y = &YankChange{Version: version, Reason: reason, PreviousReason: previous}
			m[version] = y
		}
		y.Files = append(y.Files, name)
	}
	for _, p := range slices.Sorted(maps.Keys(proposed.Signed.Targets)) {
		tf := proposed.Signed.Targets[p]
		version, name, err := tufrepo.SplitTargetPath(project, p)
		if err != nil {
			c.Other = append(c.Other, fmt.Sprintf("lists %q, which is not a release file of %s (%v)", p, project, api.ProblemFor(err).Detail))
			continue
		}
		if _, ok := tf.Hashes["sha256"]; !ok || len(tf.Hashes) != 1 {
			c.Other = append(c.Other, fmt.Sprintf("file %s of release %s lists %d hash(es) other than exactly one sha256", name, version, len(tf.Hashes)))
		}
		before, published := old[p]
		if !published {
			a := added[version]
			if a == nil {
				a = &AddedRelease{Version: version, Existing: oldReleases[version]}
				added[version] = a
			}
			a.Files = append(a.Files, fileOf(project, p, tf))
			if y, _ := yankState(tf); y {
				a.Yanked = true
			}
			continue
		}
		if before.Length != tf.Length || !sameHashes(before.Hashes, tf.Hashes) {
			c.Modified = append(c.Modified, ChangedFile{Path: p, Before: fileOf(project, p, before), After: fileOf(project, p, tf)})
			continue
		}
		fields, notObject := customFieldsChanged(before, tf)
		if notObject {
			c.CustomChanged = append(c.CustomChanged, CustomChange{Path: p})
			continue
		}
		wasYanked, oldReason := yankState(before)
		isYanked, newReason := yankState(tf)
		switch {
		case isYanked && !wasYanked:
			group(yanked, version, name, newReason, "")
		case wasYanked && !isYanked:
			group(unyanked, version, name, oldReason, "")
		case isYanked && oldReason != newReason:
			group(reasons, version, name, newReason, oldReason)
		}
		var rest []string
		for _, f := range fields {
			if f != CustomYanked && f != CustomYankReason {
				rest = append(rest, f)
			}
		}
		if len(rest) > 0 {
			c.CustomChanged = append(c.CustomChanged, CustomChange{Path: p, Fields: rest})
		}
		if fields := changedKeys(before.UnrecognizedFields, tf.UnrecognizedFields); len(fields) > 0 {
			c.Other = append(c.Other, fmt.Sprintf("changes the unrecognised field(s) %s of file %s of release %s", strings.Join(fields, ", "), name, version))
		}
	}
	for _, p := range slices.Sorted(maps.Keys(old)) {
		if _, ok := proposed.Signed.Targets[p]; !ok {
			c.Removed = append(c.Removed, fileOf(project, p, old[p]))
		}
	}
	for _, v := range sortedVersions(added) {
		c.Added = append(c.Added, *added[v])
	}
	for _, v := range sortedVersions(yanked) {
		c.Yanked = append(c.Yanked, *yanked[v])
	}
	for _, v := range sortedVersions(unyanked) {
		c.Unyanked = append(c.Unyanked, *unyanked[v])
	}
	for _, v := range sortedVersions(reasons) {
		c.ReasonChanged = append(c.ReasonChanged, *reasons[v])
	}

	if proposed.Signed.Delegations != nil {
		c.Other = append(c.Other, "delegates to other roles (project roles may not delegate)")
	}
	if current != nil && current.Signed.SpecVersion != proposed.Signed.SpecVersion {
		c.Other = append(c.Other, fmt.Sprintf("changes the TUF spec_version from %q to %q", current.Signed.SpecVersion, proposed.Signed.SpecVersion))
	}
	var before map[string]any
	if current != nil {
		before = current.Signed.UnrecognizedFields
	}
	if fields := changedKeys(before, proposed.Signed.UnrecognizedFields); len(fields) > 0 {
		c.Other = append(c.Other, fmt.Sprintf("adds, removes or changes the unrecognised top-level field(s) %s", strings.Join(fields, ", ")))
	}
	return c
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// changedKeys lists keys whose values differ between two maps of JSON values.
func changedKeys(a, b map[string]any) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || !sameJSON(mustJSON(v), mustJSON(w)) {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func sortedVersions[T any](m map[string]T) []string {
	vs := slices.Collect(maps.Keys(m))
	slices.SortFunc(vs, func(a, b string) int { return CompareVersions(b, a) })
	return vs
}

// CheckProposal decides whether a maintainer may sign proposed as the next version of the
// project role after current, the role verified through TUF (nil for a project whose
// first version this is). It refuses, as *api.Error, a version other than current + 1
// (CodeProposalStale if it is not newer, CodeVersionConflict if it skips ahead), a
// published file removed or with a changed length or hash (CodeImmutablePath), a path
// outside the project (CodePathOutsideProject), delegations (CodeDelegationForbidden) and
// an expiry that has passed (CodeExpired). These are the server's own rules: a proposal
// that breaks one was never accepted by an honest server.
func CheckProposal(project string, current, proposed *metadata.Metadata[metadata.TargetsType], now time.Time) error {
	var cur int64
	if current != nil {
		cur = current.Signed.Version
	}
	switch v := proposed.Signed.Version; {
	case v <= cur:
		return api.Errorf(api.CodeProposalStale, "the proposal is for role version %d of %s, but version %d is already published: it no longer applies; the proposer must propose again on top of version %d", v, project, cur, cur)
	case v > cur+1:
		return api.Errorf(api.CodeVersionConflict, "the proposal is for role version %d of %s, but the verified role is at version %d, so the next version is %d: the repository may not have published version %d yet; try again shortly", v, project, cur, cur+1, cur+1)
	}
	c := DiffRoles(project, current, proposed)
	if len(c.Removed) > 0 {
		f := c.Removed[0]
		return api.Errorf(api.CodeImmutablePath, "the proposal removes the published file %s (%d bytes, sha256 %s): published files are immutable; do not sign it", f.Path, f.Length, f.SHA256)
	}
	if len(c.Modified) > 0 {
		m := c.Modified[0]
		return api.Errorf(api.CodeImmutablePath, "the proposal changes the published file %s from %d bytes, sha256 %s to %d bytes, sha256 %s: published files are immutable; do not sign it", m.Path, m.Before.Length, m.Before.SHA256, m.After.Length, m.After.SHA256)
	}
	for p := range proposed.Signed.Targets {
		if _, _, err := tufrepo.SplitTargetPath(project, p); err != nil {
			return api.Errorf(api.CodePathOutsideProject, "the proposal lists %q, which is not a release file of %s: do not sign it", p, project)
		}
	}
	if proposed.Signed.Delegations != nil {
		return api.Errorf(api.CodeDelegationForbidden, "the proposal delegates to other roles, which project roles may not do: do not sign it")
	}
	if !proposed.Signed.Expires.After(now) {
		return api.Errorf(api.CodeExpired, "the proposed role version %d expired at %s", proposed.Signed.Version, tufrepo.FormatExpires(proposed.Signed.Expires))
	}
	return nil
}

// ValidateYankReason checks a yank reason: at most MaxYankReason characters, printable,
// one line.
func ValidateYankReason(reason string) error {
	if n := len([]rune(reason)); n > MaxYankReason {
		return api.Errorf(api.CodeBadRequest, "the yank reason is %d characters; at most %d are allowed", n, MaxYankReason)
	}
	for _, r := range reason {
		if !unicode.IsPrint(r) {
			return api.Errorf(api.CodeBadRequest, "the yank reason may hold only printable characters on one line (found %U)", r)
		}
	}
	return nil
}

// NextYankRole returns the next version of a project role in which every file of
// release version is flagged as yanked in its custom data ({"yanked": true} and, if reason
// is not empty, "yank_reason": reason), or, with yank false, no longer carries those two
// keys. Every other custom key (e.g. "version") is kept, every file keeps its length and
// hashes, the expiry is renewed from now and the signatures are cleared; current is not
// changed. It refuses, as *api.Error, an unknown release (CodeNotFound), yanking a release
// that is already yanked and unyanking one that is not (CodeBadRequest), and custom data
// that is not a JSON object (CodeMalformedMetadata).
func NextYankRole(current *metadata.Metadata[metadata.TargetsType], project, version string, yank bool, reason string, now time.Time) (*metadata.Metadata[metadata.TargetsType], error) {
	if err := tufrepo.ValidateProjectName(project); err != nil {
		return nil, err
	}
	if err := tufrepo.ValidateComponent("release version", version, tufrepo.MaxVersionLength); err != nil {
		return nil, err
	}
	if current == nil {
		return nil, api.Errorf(api.CodeBadRequest, "project %q has no current role metadata to extend", project)
	}
	if !yank && reason != "" {
		return nil, api.Errorf(api.CodeBadRequest, "a reason is only given when yanking")
	}
	if err := ValidateYankReason(reason); err != nil {
		return nil, err
	}
	rels := ReleasesFromRole(project, current)
	rel, ok := FindRelease(rels, version)
	if !ok {
		return nil, api.Errorf(api.CodeNotFound, "project %s has no release %q in its verified metadata (role version %d); releases: %s", project, version, current.Signed.Version, versionList(rels))
	}
	var flagged, clear []string
	for _, f := range rel.Files {
		if y, _ := yankState(current.Signed.Targets[f.Path]); y {
			flagged = append(flagged, f.Name)
		} else {
			clear = append(clear, f.Name)
		}
	}
	switch {
	case yank && len(clear) == 0:
		_, why := yankState(current.Signed.Targets[rel.Files[0].Path])
		if why != "" {
			why = " (reason: " + why + ")"
		}
		return nil, api.Errorf(api.CodeBadRequest, "release %s %s is already yanked%s; unyank it with 'cairn unyank %s %s'", project, version, why, project, version)
	case !yank && len(flagged) == 0:
		return nil, api.Errorf(api.CodeBadRequest, "release %s %s is not yanked", project, version)
	}

	next := metadata.Targets(roleExpiry(now))
	next.Signed.SpecVersion = tufrepo.SpecVersion
	next.Signed.Version = current.Signed.Version + 1
	next.Signed.UnrecognizedFields = current.Signed.UnrecognizedFields
	next.Signed.Targets = maps.Clone(current.Signed.Targets)
	for _, f := range rel.Files {
		old := current.Signed.Targets[f.Path]
		c, err := customObject(old)
		if err != nil {
			return nil, api.Wrap(api.CodeMalformedMetadata, err, "the custom data of %s is not a JSON object, so it cannot carry the yanked flag", f.Path)
		}
		delete(c, CustomYanked)
		delete(c, CustomYankReason)
		if yank {
			c[CustomYanked] = json.RawMessage("true")
			if reason != "" {
				c[CustomYankReason] = mustJSON(reason)
			}
		}
		tf := *old // a copy: current must not change
		if len(c) == 0 {
			tf.Custom = nil
		} else {
			raw, err := json.Marshal(c)
			if err != nil {
				return nil, err
			}
			msg := json.RawMessage(raw)
			tf.Custom = &msg
		}
		next.Signed.Targets[f.Path] = &tf
	}
	return next, nil
}

// Lines says in words what a role version changes, one statement a line (what `cairn
// sign` and the web UI show reviewers).
func (c RoleChanges) Lines() []string {
	var out []string
	for _, r := range c.Added {
		what := "adds release " + r.Version
		if r.Existing {
			what = "adds files to the published release " + r.Version
		}
		if r.Yanked {
			what += " (already flagged as yanked)"
		}
		out = append(out, fmt.Sprintf("%s (%s):", what, textfmt.Plural(len(r.Files), "file")))
		for _, f := range r.Files {
			out = append(out, fmt.Sprintf("  %s  %s  sha256 %s", f.Name, textfmt.Size(f.Length), f.SHA256))
		}
	}
	for _, y := range c.Yanked {
		line := fmt.Sprintf("YANKS release %s (%s: %s)", y.Version, textfmt.Plural(len(y.Files), "file"), strings.Join(y.Files, ", "))
		if y.Reason != "" {
			line += fmt.Sprintf(", reason: %q", y.Reason)
		} else {
			line += ", no reason given"
		}
		out = append(out, line)
	}
	for _, y := range c.Unyanked {
		line := fmt.Sprintf("unyanks release %s (%s: %s)", y.Version, textfmt.Plural(len(y.Files), "file"), strings.Join(y.Files, ", "))
		if y.Reason != "" {
			line += fmt.Sprintf("; it was yanked because: %q", y.Reason)
		}
		out = append(out, line)
	}
	for _, y := range c.ReasonChanged {
		out = append(out, fmt.Sprintf("changes why release %s is yanked from %q to %q", y.Version, y.PreviousReason, y.Reason))
	}
	for _, cc := range c.CustomChanged {
		if len(cc.Fields) == 0 {
			out = append(out, fmt.Sprintf("changes the custom data of %s", cc.Path))
		} else {
			out = append(out, fmt.Sprintf("changes the custom data field(s) %s of %s", strings.Join(cc.Fields, ", "), cc.Path))
		}
	}
	for _, f := range c.Removed {
		out = append(out, fmt.Sprintf("REMOVES the published file %s (%s, sha256 %s)", f.Path, textfmt.Size(f.Length), f.SHA256))
	}
	for _, m := range c.Modified {
		out = append(out, fmt.Sprintf("CHANGES the published file %s from %s, sha256 %s to %s, sha256 %s", m.Path, textfmt.Size(m.Before.Length), m.Before.SHA256, textfmt.Size(m.After.Length), m.After.SHA256))
	}
	out = append(out, c.Other...)
	if c.Empty() {
		if c.FromVersion == 0 {
			out = append(out, "creates the project with no releases")
		} else {
			out = append(out, "changes no release or file")
		}
	}
	// Every version renews the expiry a little; only a notable change is worth a line.
	const day, layout = 24 * time.Hour, "2006-01-02 15:04 UTC"
	switch {
	case c.ExpiresBefore.IsZero():
		out = append(out, fmt.Sprintf("the role metadata expires %s", c.ExpiresAfter.Format(layout)))
	case c.ExpiresBefore.Sub(c.ExpiresAfter) > day:
		out = append(out, fmt.Sprintf("SHORTENS the role metadata's expiry to %s (was %s)", c.ExpiresAfter.Format(layout), c.ExpiresBefore.Format(layout)))
	case c.ExpiresAfter.Sub(c.ExpiresBefore) > day:
		out = append(out, fmt.Sprintf("extends the role metadata's expiry to %s (was %s)", c.ExpiresAfter.Format(layout), c.ExpiresBefore.Format(layout)))
	}
	return out
}
