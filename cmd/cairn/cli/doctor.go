package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Doctor check statuses. Only StatusProblem makes 'cairn doctor' exit 4.
const (
	StatusOK      = "ok"
	StatusProblem = "problem"
	StatusTodo    = "todo" // something waits for the user (a proposal to sign), not a fault
	StatusInfo    = "info" // not configured or not checked
)

// DoctorCheck is one finding of 'cairn doctor'.
type DoctorCheck struct {
	Check  string `json:"check"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	// Fix says what to do, for every problem and to-do.
	Fix string `json:"fix,omitempty"`
}

// DoctorReport is what 'cairn doctor --output json' prints.
type DoctorReport struct {
	Server   string        `json:"server,omitempty"`
	Problems int           `json:"problems"`
	Checks   []DoctorCheck `json:"checks"`
}

// doctorFailed is the error of a report with problems: exit code 4, as a policy refusal.
type doctorFailed struct{ n int }

func (e doctorFailed) Error() string {
	return fmt.Sprintf("cairn doctor found %d problem(s); each has a fix above", e.n)
}
func (e doctorFailed) ExitCode() client.ExitCode { return client.ExitPolicy }

// Bounds of the doctor's walk over the server's projects.
const (
	doctorProjectPages = 20
	doctorProjectPage  = 500
	doctorOwnProjects  = 50
)

type doctorOptions struct {
	output        string
	expiryWarning time.Duration
	maxSkew       time.Duration
}

func (a *app) doctorCommand() *cobra.Command {
	var o doctorOptions
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check this machine's Cairn setup and the server it uses, with a fix for each problem",
		Long: `doctor checks, and says how to fix each problem it finds:

  - the pinned root of trust, and the expiry of the root it chains to;
  - that the server answers, and its TLS (certificate expiry; plain HTTP off loopback);
  - clock skew against the server's Date header, and the verified timestamp's expiry;
  - the key store: directory 0700, key files 0600 and readable, and that each key
    opens with the passphrase given without a terminal (--passphrase-file NAME=FILE,
    $CAIRN_KEY_PASSPHRASE_<NAME>, $CAIRN_KEY_PASSPHRASE; doctor never prompts);
  - the attestation policy file ('cairn policy'), if there is one;
  - the expiry of the roles of your own projects (those whose verified maintainer keys
    are in your key store);
  - pending proposals of your projects that wait for your signature (to-dos).

It writes nothing. Exit code 0 when no problem was found, 4 when any was (to-dos and
notes do not count), 10 for a bad command line.`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if o.expiryWarning < 0 || o.maxSkew <= 0 {
				return api.Errorf(api.CodeBadRequest, "--expiry-warning must be 0 or more and --max-skew more than 0")
			}
			rep := a.doctor(o)
			if o.output == "json" {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else {
				a.printDoctor(rep)
			}
			if rep.Problems > 0 {
				return doctorFailed{rep.Problems}
			}
			return nil
		}),
	}
	cmd.Flags().DurationVar(&o.expiryWarning, "expiry-warning", 30*24*time.Hour, "report roles, roots and certificates that expire within this")
	cmd.Flags().DurationVar(&o.maxSkew, "max-skew", time.Minute, "largest clock difference from the server that is not a problem")
	addOutputFlag(cmd, &o.output)
	return cmd
}

func (a *app) printDoctor(rep *DoctorReport) {
	if rep.Server != "" {
		a.printf("cairn doctor: %s\n\n", rep.Server)
	}
	tw := a.table()
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, c := range rep.Checks {
		st := c.Status
		if st == StatusProblem {
			st = "PROBLEM"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Check, st, c.Detail)
	}
	tw.Flush()
	var fixes []string
	for _, c := range rep.Checks {
		if c.Fix != "" && (c.Status == StatusProblem || c.Status == StatusTodo) {
			fixes = append(fixes, fmt.Sprintf("  %s: %s", c.Check, c.Fix))
		}
	}
	if len(fixes) > 0 {
		a.printf("\nTo fix:\n%s\n", strings.Join(fixes, "\n"))
	}
	if rep.Problems == 0 {
		a.printf("\nNo problems found.\n")
	}
}

// doctor runs every check; none of them writes anything but the verified metadata cache.
func (a *app) doctor(o doctorOptions) *DoctorReport {
	rep := &DoctorReport{Checks: []DoctorCheck{}}
	add := func(c DoctorCheck) {
		if c.Status == StatusProblem {
			rep.Problems++
		}
		rep.Checks = append(rep.Checks, c)
	}
	now := a.now()

	keys := a.doctorKeyStore(add)

	home, err := a.home()
	var cfg Config
	if err == nil {
		cfg, err = LoadConfig(home)
	}
	server := ""
	if err == nil {
		server, err = a.serverURL(cfg)
	}
	if err != nil {
		add(DoctorCheck{Check: "configuration", Status: StatusProblem, Detail: err.Error(), Fix: "run 'cairn init --server URL --root FILE' with the root your repository administrators published"})
		add(a.policyCheck())
		return rep
	}
	rep.Server = server

	// The pinned root.
	pinnedOK := false
	raw, err := readPinnedRoot(home, cfg, server)
	switch {
	case err != nil:
		add(DoctorCheck{Check: "pinned root", Status: StatusProblem, Detail: err.Error(), Fix: "make the file readable, or pin the root again with 'cairn init --server " + server + " --root FILE'"})
	case raw == nil:
		add(DoctorCheck{Check: "pinned root", Status: StatusProblem, Detail: "no root is pinned for " + server, Fix: "run 'cairn init --server " + server + " --root FILE' with the root your repository administrators published"})
	default:
		root, perr := metadata.Root().FromBytes(raw)
		if perr != nil {
			add(DoctorCheck{Check: "pinned root", Status: StatusProblem, Detail: "the pinned root does not parse: " + perr.Error(), Fix: "pin the root again with 'cairn init --server " + server + " --root FILE'"})
			break
		}
		pinnedOK = true
		c := DoctorCheck{Check: "pinned root", Status: StatusOK, Detail: fmt.Sprintf("version %d, expires %s", root.Signed.Version, expiryText(root.Signed.Expires, now))}
		if !root.Signed.Expires.After(now) {
			// Not a problem on its own: TUF only needs the newest root of the chain valid.
			c.Detail += "; clients follow its chain to the current root, which must be valid (below)"
		}
		add(c)
	}

	add(a.doctorToken(server))

	// Reachability and TLS, and the server's clock.
	a.doctorServer(server, o, now, add)

	// Verified metadata: the current root and the timestamp.
	var repo *client.Repo
	if pinnedOK {
		if repo, err = a.repo(); err == nil {
			var tl *client.TopLevel
			if tl, err = repo.TopLevel(a.ctx); err == nil {
				add(expiryCheck("current root", fmt.Sprintf("version %d (verified from the pinned root)", tl.Root.Signed.Version), tl.Root.Signed.Expires, now, o.expiryWarning,
					"the repository administrators must sign a new root ('cairn admin root rotate'); tell them"))
				add(expiryCheck("timestamp", fmt.Sprintf("version %d, verified", tl.Timestamp.Signed.Version), tl.Timestamp.Signed.Expires, now, 0,
					"check your clock first; if it is right, the server's publisher is not re-signing the timestamp: tell its operators"))
			}
		}
		if err != nil {
			fix := "see the error; 'cairn explain' and 'cairn releases' will fail the same way"
			if client.Classify(err) == client.ExitPolicy {
				fix = "if this says expired, check your clock (timedatectl); otherwise the server's metadata is stale or rolled back: tell its operators"
			}
			add(DoctorCheck{Check: "verified metadata", Status: StatusProblem, Detail: err.Error(), Fix: fix})
			repo = nil
		}
	}

	add(a.policyCheck())

	if repo != nil {
		a.doctorProjects(repo, keys, o, now, add)
	}
	return rep
}

// policyCheck reads the attestation policy 'cairn get' applies, as 'cairn policy check'
// does: a policy that does not parse makes every 'cairn get' fail.
func (a *app) policyCheck() DoctorCheck {
	c := DoctorCheck{Check: "policy file"}
	p, path, err := a.loadPolicy(&policyFlags{})
	switch {
	case err != nil:
		c.Status, c.Detail, c.Fix = StatusProblem, err.Error(), "fix the file ('cairn policy check' says what is wrong; 'cairn policy --help' shows the format), or move it away"
	case path == "":
		c.Status, c.Detail = StatusInfo, "not configured: 'cairn get' checks no attestations unless its flags ask (policy.yaml in the cairn config directory)"
	default:
		ids := len(p.Global.TrustedIdentities)
		for _, r := range p.Projects {
			ids += len(r.TrustedIdentities)
		}
		c.Status, c.Detail = StatusOK, fmt.Sprintf("%s: %d trusted identities, rules for %d projects besides the global ones", path, ids, len(p.Projects))
	}
	return c
}

// expiryCheck is a problem when expires is past, or within warn of now.
func expiryCheck(check, what string, expires, now time.Time, warn time.Duration, fix string) DoctorCheck {
	c := DoctorCheck{Check: check, Status: StatusOK, Detail: what + ", expires " + expiryText(expires, now)}
	switch {
	case !expires.After(now):
		c.Status, c.Detail, c.Fix = StatusProblem, what+", EXPIRED at "+fmtTime(expires), fix
	case warn > 0 && expires.Before(now.Add(warn)):
		c.Status, c.Detail, c.Fix = StatusProblem, what+", expires soon: "+expiryText(expires, now), fix
	}
	return c
}

// doctorServer checks that the server answers /healthz, its TLS, and the skew between its
// Date header and this machine's clock.
func (a *app) doctorServer(server string, o doctorOptions, now time.Time, add func(DoctorCheck)) {
	hc, err := a.httpClient()
	if err != nil {
		add(DoctorCheck{Check: "server", Status: StatusProblem, Detail: err.Error(), Fix: "fix the timeout setting named"})
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/healthz", nil)
	if err != nil {
		add(DoctorCheck{Check: "server", Status: StatusProblem, Detail: err.Error(), Fix: "fix the server URL with 'cairn init --server URL'"})
		return
	}
	req.Header.Set("User-Agent", userAgent)
	// A latency, measured on the real (monotonic) clock rather than a.now.
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		fix := "check the URL, your network and proxy, and that the server runs"
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			fix = "the server's TLS certificate is not trusted here: install its CA in the system trust store, or have its operators fix the certificate"
		}
		add(DoctorCheck{Check: "server", Status: StatusProblem, Detail: "unreachable: " + err.Error(), Fix: fix})
		return
	}
	elapsed := time.Since(start)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	c := DoctorCheck{Check: "server", Status: StatusOK, Detail: fmt.Sprintf("/healthz answered %d in %s", resp.StatusCode, elapsed.Round(time.Millisecond))}
	if resp.StatusCode != http.StatusOK {
		c.Status, c.Fix = StatusProblem, "the server answers but is not healthy: tell its operators ('cairnd doctor' on the server)"
	}
	add(c)

	u, _ := url.Parse(server)
	switch {
	case resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0:
		cert := resp.TLS.PeerCertificates[0]
		add(expiryCheck("tls", fmt.Sprintf("%s, certificate for %s issued by %s", tls.VersionName(resp.TLS.Version), cert.Subject.CommonName, cert.Issuer.CommonName), cert.NotAfter, now, min(o.expiryWarning, 14*24*time.Hour),
			"the server's operators must renew its TLS certificate"))
	case u != nil && u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		add(DoctorCheck{Check: "tls", Status: StatusProblem, Detail: "plain HTTP to a host that is not this machine: TUF still verifies every file, but your API token travels in clear",
			Fix: "use the server's https:// URL: 'cairn init --server https://…'"})
	default:
		add(DoctorCheck{Check: "tls", Status: StatusInfo, Detail: "plain HTTP on loopback (a local server)"})
	}

	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		add(DoctorCheck{Check: "clock", Status: StatusInfo, Detail: "the server sent no usable Date header: skew not measured"})
		return
	}
	// The Date header has one-second resolution and was set while the request was in
	// flight: compare it with the middle of the request, allowing the round trip.
	local := start.Add(elapsed / 2)
	skew := local.Sub(date)
	tolerance := o.maxSkew + elapsed + time.Second
	c = DoctorCheck{Check: "clock", Status: StatusOK, Detail: fmt.Sprintf("this machine is %s %s the server's Date header", skew.Abs().Round(time.Second), aheadBehind(skew))}
	if skew.Abs() > tolerance {
		c.Status, c.Fix = StatusProblem, "set this machine's clock right (enable NTP: timedatectl set-ntp true); TUF expiry checks use it, so a wrong clock refuses valid metadata or accepts expired metadata"
	}
	add(c)
}

func aheadBehind(d time.Duration) string {
	if d >= 0 {
		return "ahead of"
	}
	return "behind"
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// localKey is a key of the local key store, by key ID.
type localKey struct{ name, keyID string }

// doctorKeyStore checks the key store's permissions, that every key file reads, and that
// each key opens with the passphrase given without a terminal; it returns the keys that read.
func (a *app) doctorKeyStore(add func(DoctorCheck)) []localKey {
	ks, err := a.keyStore()
	if err != nil {
		add(DoctorCheck{Check: "key store", Status: StatusProblem, Detail: err.Error(), Fix: "set CAIRN_HOME"})
		return nil
	}
	st, err := os.Stat(ks.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		add(DoctorCheck{Check: "key store", Status: StatusInfo, Detail: "no key store at " + ks.Dir + " (no signing keys: you can download and verify, not sign)"})
		return nil
	}
	if err != nil {
		add(DoctorCheck{Check: "key store", Status: StatusProblem, Detail: "unreadable: " + err.Error(), Fix: "make " + ks.Dir + " readable by you alone: chmod 700 " + ks.Dir})
		return nil
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		add(DoctorCheck{Check: "key store", Status: StatusProblem, Detail: fmt.Sprintf("%s is mode %04o: other users can list your keys", ks.Dir, perm), Fix: "chmod 700 " + ks.Dir})
	}
	entries, err := os.ReadDir(ks.Dir)
	if err != nil {
		add(DoctorCheck{Check: "key store", Status: StatusProblem, Detail: "unreadable: " + err.Error(), Fix: "make " + ks.Dir + " readable by you alone: chmod 700 " + ks.Dir})
		return nil
	}
	files, ferr := a.passphraseFiles()
	if ferr != nil {
		add(DoctorCheck{Check: "key passphrases", Status: StatusProblem, Detail: ferr.Error(), Fix: "give --passphrase-file NAME=FILE"})
	}
	checked := 0
	var keys []localKey
	problems := 0
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(ks.Dir, e.Name())
		check := "key " + name
		info, err := os.Stat(p)
		if err != nil {
			add(DoctorCheck{Check: check, Status: StatusProblem, Detail: "unreadable: " + err.Error(), Fix: "chmod 600 " + p})
			problems++
			continue
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			add(DoctorCheck{Check: check, Status: StatusProblem, Detail: fmt.Sprintf("%s is mode %04o: other users can read your encrypted key and try passphrases offline", p, perm), Fix: "chmod 600 " + p})
			problems++
		}
		kf, err := ks.Load(name)
		if err != nil {
			add(DoctorCheck{Check: check, Status: StatusProblem, Detail: err.Error(), Fix: "restore " + p + " from your backup, or remove it and generate a new key"})
			problems++
			continue
		}
		keys = append(keys, localKey{name: name, keyID: kf.KeyID})
		// The passphrase sources that need no terminal, as signing uses them; doctor
		// never prompts.
		pass, src, err := a.givenPassphrase(name, files)
		if err != nil {
			add(DoctorCheck{Check: check, Status: StatusProblem, Detail: err.Error(), Fix: "give a readable file holding the passphrase"})
			problems++
			continue
		}
		if pass == nil {
			continue
		}
		checked++
		if _, err := kf.Decrypt(pass); err != nil {
			fix := fmt.Sprintf("give this key's own passphrase: set %s or --passphrase-file %s=FILE", passphraseEnv(name), name)
			if !errors.Is(err, tufrepo.ErrWrongPassphrase) {
				fix = "restore " + p + " from your backup"
			}
			add(DoctorCheck{Check: check, Status: StatusProblem, Detail: src + " does not open it: " + err.Error(), Fix: fix})
			problems++
		}
	}
	detail := fmt.Sprintf("%d key(s) in %s", len(keys), ks.Dir)
	switch {
	case checked < len(keys):
		detail += fmt.Sprintf("; %d of %d passphrase(s) checked (no --passphrase-file, $CAIRN_KEY_PASSPHRASE_<NAME> or $CAIRN_KEY_PASSPHRASE for the others)", checked, len(keys))
	case problems == 0:
		detail += "; every key opens with its passphrase"
	}
	if problems == 0 {
		add(DoctorCheck{Check: "key store", Status: StatusOK, Detail: detail})
	} else {
		add(DoctorCheck{Check: "key store", Status: StatusInfo, Detail: detail + fmt.Sprintf("; %d problem(s) above", problems)})
	}
	return keys
}

// doctorProjects finds the user's projects (a verified maintainer key is in the key store),
// checks their role expiry, and lists proposals waiting for the user's signature.
func (a *app) doctorProjects(repo *client.Repo, keys []localKey, o doctorOptions, now time.Time, add func(DoctorCheck)) {
	if len(keys) == 0 {
		add(DoctorCheck{Check: "your projects", Status: StatusInfo, Detail: "no keys in the key store: no projects of yours to check"})
		return
	}
	byID := map[string]string{}
	for _, k := range keys {
		byID[k.keyID] = k.name
	}
	ac, err := a.apiClient()
	if err != nil {
		add(DoctorCheck{Check: "your projects", Status: StatusProblem, Detail: err.Error(), Fix: "fix the configuration named"})
		return
	}
	// The project list is the server's word; each candidate is verified through TUF below.
	var candidates []string
	cursor, truncated := "", false
	for page := 0; ; page++ {
		if page == doctorProjectPages {
			truncated = true
			break
		}
		list, err := ac.ListProjects(a.ctx, doctorProjectPage, cursor)
		if err != nil {
			add(DoctorCheck{Check: "your projects", Status: StatusProblem, Detail: err.Error(), Fix: "check that the server answers (above)"})
			return
		}
		for _, p := range list.Projects {
			for _, m := range p.Maintainers {
				if _, ok := byID[m.KeyID]; ok && !slices.Contains(candidates, p.Name) {
					candidates = append(candidates, p.Name)
				}
			}
		}
		if cursor = list.Next; cursor == "" {
			break
		}
	}
	if len(candidates) > doctorOwnProjects {
		candidates, truncated = candidates[:doctorOwnProjects], true
	}
	if len(candidates) == 0 {
		add(DoctorCheck{Check: "your projects", Status: StatusInfo, Detail: "none of the server's projects lists a key of your key store as a maintainer"})
	}
	for _, name := range candidates {
		check := "project " + name
		pr, err := repo.ProjectRole(a.ctx, name)
		if err != nil {
			add(DoctorCheck{Check: check, Status: StatusProblem, Detail: err.Error(), Fix: "'cairn explain " + name + "' shows which link of the chain fails"})
			continue
		}
		var mine []string
		for _, id := range pr.KeyIDs {
			if n, ok := byID[id]; ok {
				mine = append(mine, n)
			}
		}
		slices.Sort(mine)
		if len(mine) == 0 {
			add(DoctorCheck{Check: check, Status: StatusInfo, Detail: "the server lists one of your keys, but the verified delegation does not (a maintainer change waits for publication?)"})
			continue
		}
		fix := fmt.Sprintf("publish the role again with a fresh expiry: cairn project resign %s --key %s", name, strings.Join(mine, " --key "))
		add(expiryCheck(check, fmt.Sprintf("role version %d, your key(s) %s, threshold %d", pr.Version(), strings.Join(mine, ", "), pr.Threshold), pr.Metadata.Signed.Expires, now, o.expiryWarning, fix))

		pending, err := ac.Pending(a.ctx, name)
		if err != nil {
			add(DoctorCheck{Check: check + " proposals", Status: StatusProblem, Detail: err.Error(), Fix: "check that the server answers (above)"})
			continue
		}
		for _, p := range pending.Proposals {
			var unsigned []string
			for _, n := range mine {
				id := ""
				for _, k := range keys {
					if k.name == n {
						id = k.keyID
					}
				}
				if !slices.Contains(p.SignedBy, id) {
					unsigned = append(unsigned, n)
				}
			}
			if len(unsigned) == 0 {
				continue
			}
			add(DoctorCheck{Check: check + " proposals", Status: StatusTodo,
				Detail: fmt.Sprintf("%s version %d has %d of %d signatures and waits for yours (expires %s)", p.Kind, p.Version, len(p.SignedBy), p.Threshold, fmtTime(p.ExpiresAt)),
				Fix:    fmt.Sprintf("review and sign it: cairn sign %s --key %s --kind %s --version %d", name, unsigned[0], kindFlag(p.Kind), p.Version)})
		}
	}
	if truncated {
		add(DoctorCheck{Check: "your projects", Status: StatusInfo, Detail: fmt.Sprintf("only the first %d projects of yours (of at most %d listed) were checked", doctorOwnProjects, doctorProjectPages*doctorProjectPage)})
	}
}

func kindFlag(kind string) string {
	if kind == "maintainers" {
		return "maintainers"
	}
	return "role"
}

// doctorToken says where writes would take their API token from (never the token
// itself); the server is not asked whether it accepts it.
func (a *app) doctorToken(server string) DoctorCheck {
	tok, err := a.resolveToken()
	switch {
	case err != nil:
		return DoctorCheck{Check: "api token", Status: StatusProblem, Detail: err.Error(), Fix: "fix the stored token as the detail says, or store it again with 'cairn login " + server + "'"}
	case tok.value == "":
		return DoctorCheck{Check: "api token", Status: StatusInfo, Detail: "none for " + server + " (downloads need none; writes need one: 'cairn login " + server + "')"}
	}
	return DoctorCheck{Check: "api token", Status: StatusOK, Detail: "from " + tok.source}
}
