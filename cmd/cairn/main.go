// Command cairn is the Cairn CLI for maintainers and downloaders. It is a thin wrapper:
// the commands live in package cli so that tests can run them in-process.
package main

import (
	"os"

	"github.com/cairn-dev/cairn/cmd/cairn/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}
