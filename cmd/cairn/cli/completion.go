package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Shell completion: 'cairn completion bash|zsh|fish|powershell' (cobra's own command)
// prints the script; the script calls 'cairn __complete …', which answers with the
// candidates below. Key names come from the local key store; project names from the
// configured server, bounded so that a slow or absent server never holds up the shell.
const (
	// completionTimeout bounds the one request a project-name completion makes.
	completionTimeout = 2 * time.Second
	// completionLimit bounds the names offered (one page of GET /api/v1/projects).
	completionLimit = 100
)

// addCompletions adds cobra's completion command and registers the dynamic completions
// on the built command tree.
func (a *app) addCompletions(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	if cmd, _, err := root.Find([]string{"completion"}); err == nil && cmd != root {
		// cobra's command prints its help for a shell it does not know, and succeeds.
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown shell %q: cairn completes bash, zsh, fish and powershell", args[0])
			}
			return cmd.Help()
		}
		cmd.Args = cobra.ArbitraryArgs
	}
	// The commands whose first argument is an existing project (NAME or
	// NAME[@VERSION]); 'project create NAME' names a new one, so is not here.
	projectArgCommands := []string{
		"upload", "releases", "get", "attestations", "sign", "yank", "unyank", "explain",
		"maintainer list", "maintainer add", "maintainer remove", "maintainer threshold", "maintainer resign",
	}
	// The flags that take the name of a key in the local key store.
	keyNameFlags := []string{"key", "new-root-key", "new-targets-key"}
	var walk func(path string, c *cobra.Command)
	walk = func(path string, c *cobra.Command) {
		for _, name := range keyNameFlags {
			if c.LocalNonPersistentFlags().Lookup(name) != nil {
				_ = c.RegisterFlagCompletionFunc(name, a.completeKeyNames(cobra.ShellCompDirectiveNoFileComp))
			}
		}
		if c.LocalNonPersistentFlags().Lookup("maintainer") != nil {
			// --maintainer takes a local key name or a public key file.
			_ = c.RegisterFlagCompletionFunc("maintainer", a.completeKeyNames(cobra.ShellCompDirectiveDefault))
		}
		if c.LocalNonPersistentFlags().Lookup("project") != nil {
			_ = c.RegisterFlagCompletionFunc("project", func(_ *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
				return a.completeProjects(prefix), cobra.ShellCompDirectiveNoFileComp
			})
		}
		for _, p := range projectArgCommands {
			if p == path {
				c.ValidArgsFunction = func(_ *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
					if len(args) > 0 {
						// Later arguments (VERSION, FILE…, PUBKEY) are left to the shell.
						return nil, cobra.ShellCompDirectiveDefault
					}
					return a.completeProjects(prefix), cobra.ShellCompDirectiveNoFileComp
				}
			}
		}
		if path == "key export" {
			complete := a.completeKeyNames(cobra.ShellCompDirectiveNoFileComp)
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
				if len(args) > 0 {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return complete(cmd, args, prefix)
			}
		}
		for _, sub := range c.Commands() {
			walk(strings.TrimSpace(path+" "+sub.Name()), sub)
		}
	}
	walk("", root)
}

// completeKeyNames offers the names of the keys in the local key store; directive says
// what the shell may offer besides (files, for --maintainer).
func (a *app) completeKeyNames(directive cobra.ShellCompDirective) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ks, err := a.keyStore()
		if err != nil {
			return nil, directive
		}
		entries, err := os.ReadDir(ks.Dir)
		if err != nil {
			return nil, directive
		}
		var names []cobra.Completion
		for _, e := range entries {
			name, ok := strings.CutSuffix(e.Name(), ".json")
			if !ok || e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasPrefix(name, prefix) {
				continue
			}
			if _, err := ks.path(name); err != nil {
				continue // not a name 'cairn' would accept
			}
			names = append(names, name)
			if len(names) == completionLimit {
				break
			}
		}
		return names, directive
	}
}

// completeProjects offers the names of the server's projects that start with prefix: at
// most completionLimit, from one request bounded by completionTimeout. Any failure (no
// server configured, unreachable, slow, refusing) offers nothing: completion must never
// print an error into the user's command line.
func (a *app) completeProjects(prefix string) []cobra.Completion {
	ac, err := a.apiClient()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(a.ctx, completionTimeout)
	defer cancel()
	page, err := ac.ListProjects(ctx, completionLimit, projectCursor(prefix))
	if err != nil {
		return nil
	}
	var names []cobra.Completion
	for _, p := range page.Projects {
		if strings.HasPrefix(p.Name, prefix) {
			names = append(names, p.Name)
		}
	}
	return names
}

// projectCursor is a cursor for GET /api/v1/projects that sorts before every name
// starting with prefix and after as many others as it can, so that the one page asked
// for holds the names that match. The list is "names after the cursor": the cursor is
// prefix with its last byte lowered by one and "~" (above every character a project
// name may hold) appended, which still sorts below the prefix's names under collations
// that weigh punctuation last.
func projectCursor(prefix string) string {
	if prefix == "" {
		return ""
	}
	last := prefix[len(prefix)-1]
	if last == 0 {
		return prefix[:len(prefix)-1]
	}
	return prefix[:len(prefix)-1] + string([]byte{last - 1}) + "~"
}
