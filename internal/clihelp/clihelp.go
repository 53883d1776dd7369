// Package clihelp makes the help of cairn and cairnd read like other cobra CLIs (cosign,
// oras, helm): boolean flags, -h/--help among them, shown plainly as "-h, --help".
package clihelp

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// PlainBools shows every boolean flag of root and its subcommands plainly, and gives
// each command its -h/--help flag up front so that the same holds for help.
//
// pflag v1.1.0 prints each boolean flag as "--name[=true|false]": it adds that suffix to
// any flag whose value reports IsBoolFlag. A flag whose value only says Type "bool" and
// whose NoOptDefVal is "true" parses exactly the same (--name, --name=false, -n; GetBool
// works) and is printed as "--name". So each boolean value is wrapped in plainBool,
// which forwards everything except IsBoolFlag. Call it once the command tree is built;
// calling it again changes nothing.
func PlainBools(root *cobra.Command) {
	// cobra adds its help and completion commands and the help flag lazily, while
	// executing; add them now so that they are covered.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	walk(root, func(c *cobra.Command) {
		if c.Flags().Lookup("help") == nil {
			fs := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
			fs.BoolP("help", "h", false, "help for "+c.Name())
			c.Flags().AddFlagSet(fs)
			// As cobra marks its own: completion then offers nothing once --help is given.
			_ = c.Flags().SetAnnotation("help", cobra.FlagSetByCobraAnnotation, []string{"true"})
		}
		for _, fs := range []*pflag.FlagSet{c.PersistentFlags(), c.Flags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() && f.Value.Type() == "bool" {
					f.Value = plainBool{f.Value}
					if f.NoOptDefVal == "" {
						f.NoOptDefVal = "true"
					}
				}
			})
		}
	})
}

// plainBool is a boolean flag value without the IsBoolFlag method (see PlainBools).
type plainBool struct{ pflag.Value }

func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		walk(sub, f)
	}
}
