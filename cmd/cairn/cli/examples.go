package cli

import (
	"strings"

	"github.com/spf13/cobra"
)

// commandExamples are the Examples of the commands people run daily, by command path,
// kept together so that they tell one story: they are runnable as shown, in this order,
// against a server whose operators published root.json (TestExamplesRun runs them all
// against a real server, with https://cairn.example.org replaced by its URL).
func commandExamples() map[string]string {
	return map[string]string{
		"init": `  # Pin the root of trust the server's operators published, and make it the default server
  cairn init --server https://cairn.example.org --root root.json`,

		"key generate": `  # An ed25519 key, encrypted with a passphrase you are asked for (or $CAIRN_KEY_PASSPHRASE)
  cairn key generate --name alice
  # An ECDSA P-256 key instead
  cairn key generate --name alice-p256 --type ecdsa-p256`,

		"key export": `  # The public key, for a co-maintainer's 'cairn project create --maintainer'
  cairn key export --public alice`,

		"project create": `  # Writes need a token from the server's operators: export CAIRN_TOKEN=...
  # hello, maintained by alice alone
  cairn project create hello --key alice
  # duo, maintained by alice and bob: every change needs both signatures
  cairn key export --public bob > bob.pub
  cairn project create duo --key alice --maintainer bob.pub --threshold 2`,

		"upload": `  cairn upload hello 1.0.0 hello-1.0.0.tar.gz --key alice
  # Several files in one release; the result as JSON
  cairn upload hello 1.1.0 hello-1.1.0.tar.gz hello-1.1.0-py3-none-any.whl --key alice --output json`,

		"releases": `  cairn releases hello
  cairn releases hello --output json`,

		"get": `  # The newest release that is not yanked, into the current directory
  cairn get hello
  # One version, into a directory of its own
  cairn get hello@1.0.0 --output-dir hello-1.0.0
  # Only one file of the release
  cairn get hello@1.1.0 --file hello-1.1.0.tar.gz --output-dir dist
  # Through the server's OCI registry, checked against the signed release
  cairn get hello@1.1.0 --via oci --output-dir from-oci`,

		"yank": `  cairn yank hello 1.0.0 --key alice --reason "broken build; use 1.1.0"`,

		"unyank": `  cairn unyank hello 1.0.0 --key alice`,

		"sign": `  # See what alice proposed for duo and co-sign it (asks before signing)
  cairn sign duo --key bob
  # In a script: co-sign role version 2 without asking
  cairn sign duo --key bob --version 2 --yes`,

		"search": `  # Projects whose name starts with "hel", each verified through TUF
  cairn search hel
  # Releases published since a date, as JSON with what verification found
  cairn search --after 2026-01-01 --output json`,

		"mirror export": `  # For an air-gapped site: hello's releases and their signed metadata, in one file
  cairn mirror export --project hello -o bundle.tar`,

		"mirror verify": `  # Anywhere, with no network: the TUF chain from the root you trust, every file hash
  cairn mirror verify bundle.tar --root root.json`,

		"mirror import": `  # Lay the bundle out for nginx (deploy/nginx/cairn-static.conf serves DIR)
  cairn mirror import bundle.tar --static mirror-www --root root.json`,

		"version": `  cairn version
  cairn version --output json`,
	}
}

// addExamples sets the Example of each command in commandExamples (TestExamplesRun
// checks that each found its command).
func addExamples(root *cobra.Command) {
	for path, example := range commandExamples() {
		if cmd, _, err := root.Find(strings.Fields(path)); err == nil && cmd.CommandPath() == "cairn "+path {
			cmd.Example = example
		}
	}
}
