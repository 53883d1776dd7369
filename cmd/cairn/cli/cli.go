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
	"os"

	"github.com/cairn-dev/cairn/client"
	"github.com/spf13/cobra"
)

// Main runs cairn with args (without the program name) and returns the process exit code.
// env looks up environment variables (nil means os.Getenv); the ones read are CAIRN_HOME,
// XDG_CONFIG_HOME, HOME, CAIRN_SERVER, CAIRN_TOKEN, CAIRN_KEY_PASSPHRASE and CAIRN_KDF.
// stdin is only used to prompt for passphrases when it is a terminal.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	return MainContext(context.Background(), args, stdin, stdout, stderr, env)
}

// MainContext is Main with a context that bounds every network operation.
func MainContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	if env == nil {
		env = os.Getenv
	}
	a := &app{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, env: env}
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

	server string // --server
	token  string // --token
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

Configuration lives in $CAIRN_HOME (default $XDG_CONFIG_HOME/cairn or ~/.config/cairn).`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.PersistentFlags().StringVar(&a.server, "server", "", "Cairn server URL (default: $CAIRN_SERVER, else the one from 'cairn init')")
	root.PersistentFlags().StringVar(&a.token, "token", "", "API bearer token for writes (default: $CAIRN_TOKEN)")
	root.AddCommand(a.initCommand(), a.keyCommand(), a.projectCommand(), a.uploadCommand(),
		a.releasesCommand(), a.getCommand(), a.logCommand(),
		a.signCommand(), a.yankCommand(), a.unyankCommand())
	root.AddCommand(a.adminCommand())
	root.AddCommand(a.auditCommand())
	root.AddCommand(a.maintainerAndExplainCommands(root)...)
	return root
}

// printf writes to stdout; write errors surface at exit through the shell, not here.
func (a *app) printf(format string, args ...any) { fmt.Fprintf(a.stdout, format, args...) }

// notef writes progress and warnings to stderr, keeping stdout for results.
func (a *app) notef(format string, args ...any) { fmt.Fprintf(a.stderr, format, args...) }
