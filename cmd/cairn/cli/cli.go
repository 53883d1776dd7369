// Package cli implements the cairn command line. Main runs one invocation in-process with
// explicit standard streams and environment, so tests (including end-to-end tests against
// a real server) can drive it exactly as a user would, and read its exit code.
//
// Exit codes are client.ExitCode values: 0 ok, 1 hash mismatch, 2 signature invalid,
// 3 key not trusted, 4 policy rejection, 10 malformed input (including bad command
// lines), 20 any other failure.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/clihelp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// Main runs cairn with args (without the program name) and returns the process exit code.
// env looks up environment variables (nil means os.Getenv); the ones read are CAIRN_HOME,
// XDG_CONFIG_HOME, XDG_DATA_HOME, XDG_CACHE_HOME (dirs.go), HOME, CAIRN_SERVER, CAIRN_TOKEN,
// CAIRN_CREDENTIAL_STORE, DBUS_SESSION_BUS_ADDRESS (credentials.go), CAIRN_KEY_PASSPHRASE,
// CAIRN_KEY_PASSPHRASE_<NAME> (passphrase.go) and CAIRN_KDF.
// stdin is only used to prompt for passphrases when it is a terminal.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	return MainContext(context.Background(), args, stdin, stdout, stderr, env)
}

// MainContext is Main with a context that bounds every network operation.
func MainContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	if env == nil {
		env = os.Getenv
	}
	return mainApp(&app{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, env: env}, args)
}

// mainApp runs one invocation a with args.
func mainApp(a *app, args []string) int {
	if a.now == nil {
		a.now = time.Now
	}
	ctx, stdin, stdout, stderr := a.ctx, a.stdin, a.stdout, a.stderr
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return int(client.ExitOK)
	}
	var re *runError
	if errors.As(err, &re) {
		fmt.Fprintf(stderr, "cairn: error: %v\n", re.err)
		if api.CodeOf(re.err) == api.CodeUnauthorized {
			if tok, terr := a.resolveToken(); terr == nil && tok.source != "" {
				fmt.Fprintf(stderr, "cairn: the token came from %s.\n", tok.source)
				if a.token == "" && a.env("CAIRN_TOKEN") == "" {
					fmt.Fprintf(stderr, "cairn: ask the server's operators for a valid token, then run 'cairn login' again (or 'cairn logout' to remove this one).\n")
				}
			}
		}
		return int(client.Classify(re.err))
	}
	// Anything cobra itself refused (unknown command or flag, wrong arguments) is a bad
	// command line.
	help := "cairn --help"
	if cmd, _, ferr := root.Find(args); ferr == nil && cmd != root {
		help = cmd.CommandPath() + " --help"
	}
	fmt.Fprintf(stderr, "cairn: error: %v\nRun '%s' for usage.\n", err, help)
	return int(client.ExitMalformed)
}

// app is one invocation: its streams, environment and global flags. Nothing is shared
// between invocations.
type app struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	env    func(string) string

	server    string   // --server
	token     string   // --token
	passFiles []string // --passphrase-file NAME=FILE

	tok        *resolvedToken // the API token, once looked up (resolveToken)
	noProgress bool           // --no-progress

	flags    *pflag.FlagSet  // the global flags, to tell a given timeout from its default
	timeouts client.Timeouts // --connect-timeout, --response-timeout, --read-timeout
	// classicSnapshot is --classic-snapshot: never the Merkle snapshot.
	classicSnapshot bool
	hc              *http.Client // built once from the timeouts, shared by every request

	// now is the clock of every decision and message that depends on the time (expiry
	// warnings, new metadata's expiry, "in 20 days"), so tests can run a command at a
	// chosen instant. mainApp sets it to time.Now when it is nil.
	now func() time.Time

	// newKeylessSigner makes the signer of 'cairn attest' (nil: client.NewKeylessSigner);
	// tests put sigstore-go's in-process VirtualSigstore behind it.
	newKeylessSigner func(client.SigningServices) (*client.KeylessSigner, error)
	// openBrowser opens a login URL (nil: the system's browser); tests follow it with HTTP.
	openBrowser func(url string) error
}

// stdinIsTerminal says whether a person can answer on stdin.
func (a *app) stdinIsTerminal() bool {
	f, ok := a.stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// runError marks an error returned by a command's own code, as opposed to a command
// line that cobra refused, so that Main can tell the two apart for the exit code.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// run adapts a command implementation for cobra's RunE.
func run(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := f(cmd, args); err != nil {
			return &runError{err: err}
		}
		return nil
	}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "cairn",
		Short: "Sign, publish, list and verify releases on a Cairn server",
		Long: `cairn talks to a Cairn server. Maintainers create projects and upload releases
signed with their own keys; anyone lists and downloads releases, verified end to end
through TUF metadata from a pinned root of trust.

Configuration lives in $XDG_CONFIG_HOME/cairn (~/.config/cairn), signing keys in
$XDG_DATA_HOME/cairn (~/.local/share/cairn), verified metadata in $XDG_CACHE_HOME/cairn
(~/.cache/cairn); $CAIRN_HOME puts all three in one directory. 'cairn login' stores API
tokens.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.PersistentFlags().StringVar(&a.server, "server", "", "Cairn server URL (default: $CAIRN_SERVER, else the one from 'cairn init')")
	root.PersistentFlags().StringVar(&a.token, "token", "", "API bearer token for writes; visible to other users in ps output, so prefer 'cairn login' (default: $CAIRN_TOKEN, else the token 'cairn login' stored for the server)")
	def := client.DefaultTimeouts()
	root.PersistentFlags().DurationVar(&a.timeouts.Connect, "connect-timeout", def.Connect, "limit on connecting to the server, TLS included; 0: none (default: $CAIRN_CONNECT_TIMEOUT, else "+def.Connect.String()+")")
	root.PersistentFlags().DurationVar(&a.timeouts.Response, "response-timeout", def.Response, "limit on the wait for the server's answer to a request, beyond what --wait asks; 0: none (default: $CAIRN_RESPONSE_TIMEOUT, else "+def.Response.String()+")")
	root.PersistentFlags().DurationVar(&a.timeouts.Read, "read-timeout", def.Read, "longest the server may send no data during a download (slow-retrieval protection); 0: none (default: $CAIRN_READ_TIMEOUT, else "+def.Read.String()+")")
	root.PersistentFlags().StringArrayVar(&a.passFiles, "passphrase-file", nil, "NAME=FILE: read key NAME's passphrase from FILE (repeatable). Else $CAIRN_KEY_PASSPHRASE_<NAME> (upper case, other characters as _), else $CAIRN_KEY_PASSPHRASE, else a prompt")
	root.PersistentFlags().BoolVar(&a.classicSnapshot, "classic-snapshot", false, "verify through snapshot.json as standard TUF clients do, even when the server offers a Merkle snapshot (more bytes per refresh)")
	root.PersistentFlags().BoolVar(&a.noProgress, "no-progress", false, "draw no progress bars (they are drawn only on a terminal, for files of 4 MiB or more)")
	a.flags = root.PersistentFlags()
	root.AddCommand(a.initCommand(), a.keyCommand(), a.projectCommand(), a.uploadCommand(),
		a.releasesCommand(), a.getCommand(), a.attestCommand(), a.attestationsCommand(), a.policyCommand(), a.fetchCommand(), a.logCommand(),
		a.signCommand(), a.yankCommand(), a.unyankCommand(), a.versionCommand())
	root.AddCommand(a.adminCommand())
	root.AddCommand(a.auditCommand())
	root.AddCommand(a.maintainerAndExplainCommands(root)...)
	root.AddCommand(a.diffCommand(), a.doctorCommand(), a.mirrorCommand(), a.searchCommand())
	root.AddCommand(a.loginCommand(), a.logoutCommand())
	// Before cobra's completion command is made: it keeps the output it is made with.
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	addExamples(root)
	a.addCompletions(root)
	clihelp.PlainBools(root)
	return root
}

// httpClient is the one HTTP client of this invocation: every request to the server (REST,
// TUF metadata and targets, OCI) goes through it, bounded by the timeouts from the flags,
// else the environment, else client.DefaultTimeouts.
func (a *app) httpClient() (*http.Client, error) {
	if a.hc != nil {
		return a.hc, nil
	}
	t := a.timeouts
	for _, o := range []struct {
		flag, env string
		v         *time.Duration
	}{
		{"connect-timeout", "CAIRN_CONNECT_TIMEOUT", &t.Connect},
		{"response-timeout", "CAIRN_RESPONSE_TIMEOUT", &t.Response},
		{"read-timeout", "CAIRN_READ_TIMEOUT", &t.Read},
	} {
		src := "--" + o.flag
		if a.flags == nil || !a.flags.Changed(o.flag) {
			e := a.env(o.env)
			if e == "" {
				continue
			}
			d, err := time.ParseDuration(e)
			if err != nil {
				return nil, api.Errorf(api.CodeBadRequest, "$%s=%q is not a duration: write it like 30s or 2m", o.env, e)
			}
			*o.v, src = d, "$"+o.env
		}
		if *o.v < 0 {
			return nil, api.Errorf(api.CodeBadRequest, "%s is %s: give a positive duration, or 0 for no limit", src, *o.v)
		}
	}
	a.hc = client.NewHTTPClient(t)
	return a.hc, nil
}

// printf writes to stdout; write errors surface at exit through the shell, not here.
func (a *app) printf(format string, args ...any) { fmt.Fprintf(a.stdout, format, args...) }

// notef writes progress and warnings to stderr, keeping stdout for results.
func (a *app) notef(format string, args ...any) { fmt.Fprintf(a.stderr, format, args...) }
