package daemon

import (
	"io"

	"github.com/cairn-dev/cairn/internal/clihelp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// configFlagsShown lists, for each command other than serve that takes the configuration
// (withConfig), the configuration flags it reads; the others are hidden from its help.
// Every command still accepts all of them, so one config file, one CAIRN_* environment
// and one command line serve every command, and resolve still refuses a config file key
// no command knows. A command missing here shows every flag (TestHelpListsOwnFlags
// fails, so that a new command is given its list).
func configFlagsShown() map[string][]string {
	// dbFlags are what openDB reads, with the config file and the log level.
	dbFlags := []string{"config", "log-level", "database-url", "dev", "db-idle-timeout", "db-keepalive"}
	return map[string][]string{
		"cairnd migrate":      dbFlags,
		"cairnd bootstrap":    append([]string{"no-migrate", "timestamp-key", "snapshot-key", "recently-claimed-key", "standby-key"}, dbFlags...),
		"cairnd token create": append([]string{"no-migrate"}, dbFlags...),
		"cairnd token list":   append([]string{"no-migrate"}, dbFlags...),
		"cairnd token revoke": append([]string{"no-migrate"}, dbFlags...),
		"cairnd keys check":   append([]string{"timestamp-key", "snapshot-key", "recently-claimed-key", "standby-key"}, dbFlags...),
		"cairnd doctor": append([]string{"timestamp-key", "snapshot-key", "recently-claimed-key", "standby-key", "data-dir", "blob-dir", "max-blob-size", "blob-s3-bucket",
			"blob-s3-endpoint", "blob-s3-region", "blob-s3-prefix", "blob-s3-path-style", "blob-s3-access-key", "blob-s3-secret-key"}, dbFlags...),
		"cairnd publish": append([]string{"timestamp-key", "snapshot-key", "recently-claimed-key", "standby-key", "data-dir", "blob-dir", "metadata-file-min",
			"shard-capacity", "publish-timeout", "blob-s3-bucket", "blob-s3-endpoint", "blob-s3-region", "blob-s3-prefix", "blob-s3-path-style",
			"blob-s3-access-key", "blob-s3-secret-key"}, dbFlags...),
		// A mirror import reads no database; --database-url is accepted (one configuration
		// for every command) and ignored.
		"cairnd mirror import": {"config", "log-level", "database-url", "mirror-dir", "data-dir", "rekor-key", "rekor-origin"},
		"cairnd gc": append([]string{"no-migrate", "blob-dir", "data-dir", "blob-s3-bucket", "blob-s3-endpoint", "blob-s3-region",
			"blob-s3-prefix", "blob-s3-path-style", "blob-s3-access-key", "blob-s3-secret-key"}, dbFlags...),
	}
}

// tidyHelp hides from each command's help the configuration flags it does not read, and
// shows boolean flags plainly (clihelp.PlainBools). It sets the root's output first:
// cobra's completion command, which PlainBools makes, keeps the output it is made with.
func tidyHelp(root *cobra.Command, stdout, stderr io.Writer) *cobra.Command {
	root.SetOut(stdout)
	root.SetErr(stderr)
	config := pflag.NewFlagSet("config", pflag.ContinueOnError)
	c := defaultConfig()
	var file string
	bindFlags(config, &c, &file)
	table := configFlagsShown()
	var visit func(*cobra.Command)
	visit = func(cmd *cobra.Command) {
		if shown, ok := table[cmd.CommandPath()]; ok {
			keep := map[string]bool{}
			for _, name := range shown {
				keep[name] = true
			}
			config.VisitAll(func(f *pflag.Flag) {
				if !keep[f.Name] {
					_ = cmd.Flags().MarkHidden(f.Name)
				}
			})
		}
		for _, sub := range cmd.Commands() {
			visit(sub)
		}
	}
	visit(root)
	clihelp.PlainBools(root)
	return root
}
