package main

import (
	"regexp"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed moves a command's flags in front of its positional arguments,
// so `lamina save a.csv --key k` works as users expect (urfave/cli v2 stops
// parsing flags at the first positional argument). Everything after "--" is
// left alone.
func interspersed(cmds []*cli.Command, args []string) []string {
	if len(args) == 0 {
		return args
	}
	// Global flags come before the command name.
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		if !strings.Contains(args[i], "=") && (args[i] == "--instance") {
			i++
		}
		i++
	}
	if i >= len(args) {
		return args
	}
	var cmd *cli.Command
	for _, c := range cmds {
		if c.HasName(args[i]) {
			cmd = c
		}
	}
	if cmd == nil {
		return args
	}
	head := append([]string(nil), args[:i+1]...)
	rest := args[i+1:]
	if len(cmd.Subcommands) > 0 {
		return append(head, interspersed(cmd.Subcommands, rest)...)
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, pos []string
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			pos = append(pos, rest[j+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if takesValue[name] && j+1 < len(rest) {
			flags = append(flags, rest[j+1])
			j++
		}
	}
	out := append(head, flags...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out
}

// hoistInstance moves the global --instance flag in front of the command
// wherever it is given before "--": `lamina status --instance lab2` works
// as `lamina --instance lab2 status` (urfave/cli refused it as "flag
// provided but not defined: -instance").
func hoistInstance(args []string) []string {
	var global, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(global, append(rest, args[i:]...)...)
		case (a == "--instance" || a == "-instance") && i+1 < len(args) && args[i+1] != "--":
			global = append(global, a, args[i+1])
			i++
		case strings.HasPrefix(a, "--instance=") || strings.HasPrefix(a, "-instance="):
			global = append(global, a)
		default:
			rest = append(rest, a)
		}
	}
	return append(global, rest...)
}

// missing returns "--NAME is required; " for the first of names that is
// not given (or empty), "" when all are, to begin a usage error (exit 2).
// urfave's Required would exit 1 after printing all of the help on stdout.
func missing(c *cli.Context, names ...string) string {
	for _, n := range names {
		if c.String(n) == "" {
			return "--" + n + " is required; "
		}
	}
	return ""
}

// negativeNumber is an argument such as -5 or -5GB, which the flag parser
// reads as an unknown flag.
var negativeNumber = regexp.MustCompile(`^-[0-9.]`)

// badFlagValue is Go's flag package refusing a flag's value: the value,
// the flag's name, and why.
var badFlagValue = regexp.MustCompile(`^invalid value (".*") for flag --?([^-\s][^\s:]*): (parse error|value out of range)$`)

// flagOf is the flag of the command c runs (or of lamina) named name, nil
// when there is none.
func flagOf(c *cli.Context, name string) cli.Flag {
	var flags []cli.Flag
	if c.Command != nil {
		flags = c.Command.Flags
	}
	if c.App != nil {
		flags = append(slices.Clip(flags), c.App.Flags...)
	}
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

// usageExit makes a flag the parser refuses (unknown, or a bad value) a
// usage error: exit 2 with a short message, as the commands' own checks.
func usageExit(c *cli.Context, err error, _ bool) error {
	name := commandName(c)
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok && negativeNumber.MatchString(f) {
		// `cache limit -5GB`: a number the parser took for a flag (it
		// said "flag provided but not defined: --5GB").
		if c.Command != nil && strings.Contains(c.Command.ArgsUsage, "SIZE") {
			return exitf(2, "%s: a size must be positive", f)
		}
		return exitf(2, "%s is read as a flag, and %s has none such: put -- before an argument that starts with '-' (%s --help lists the flags)", f, name, name)
	}
	if m := badFlagValue.FindStringSubmatch(msg); m != nil {
		// Go's flag package said "invalid value "abc" for flag -limit:
		// parse error": say what the flag wants.
		want := m[3]
		switch flagOf(c, m[2]).(type) {
		case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag, *cli.Float64Flag:
			want = "want a number"
			if m[3] == "value out of range" {
				want = "the number is out of range"
			}
		case *cli.DurationFlag:
			want = "want a duration such as 30s, 5m or 1h"
		case *cli.BoolFlag:
			want = "want true or false"
		}
		return exitf(2, "invalid value %s for --%s: %s (%s --help lists the flags)", m[1], m[2], want, name)
	}
	for _, p := range []string{"flag provided but not defined: ", "flag needs an argument: "} {
		// Go's flag package names a flag with one dash; users type two.
		if f, ok := strings.CutPrefix(msg, p+"-"); ok && len(f) > 1 && !strings.HasPrefix(f, "-") {
			msg = p + "--" + f
		}
	}
	if a, b, ok := strings.Cut(msg, " for flag -"); ok && !strings.HasPrefix(b, "-") && strings.Index(b, ":") > 1 {
		msg = a + " for flag --" + b
	}
	return exitf(2, "%s (%s --help lists the flags)", msg, name)
}

// onUsageError sets usageExit on cmds and their subcommands,
// unknownCommand on the ones that only group subcommands, and refuses
// arguments to every command that takes none (its ArgsUsage is blank):
// `lamina gc dry-run` ran a full gc.
func onUsageError(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = usageExit
		if len(c.Subcommands) == 0 {
			// urfave/cli gives every command a "help" subcommand (alias
			// "h"): `lamina save h` printed save's help and saved nothing,
			// exit 0. A command's own arguments are files and keys; -h and
			// --help stay.
			c.HideHelpCommand = true
		}
		switch {
		case len(c.Subcommands) > 0 && c.Action == nil:
			c.Action = unknownCommand
		case len(c.Subcommands) > 0:
			c.Action = noArguments(c.Action, true)
		case strings.TrimSpace(c.ArgsUsage) == "" && c.Action != nil:
			c.Action = noArguments(c.Action, false)
		}
		onUsageError(c.Subcommands)
	}
}

// noArguments wraps the action of a command that takes no arguments: any is
// a usage error (exit 2), and nothing runs. A command that also groups
// subcommands says the argument is no command of it.
func noArguments(action cli.ActionFunc, group bool) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() == 0 {
			return action(c)
		}
		name := commandName(c)
		if group {
			return exitf(2, "%s has no command %q (%s --help lists them)", name, c.Args().First(), name)
		}
		return exitf(2, "%s takes no arguments, not %q (%s --help lists its flags)", name, strings.Join(c.Args().Slice(), " "), name)
	}
}

// unknownCommand is the action of lamina and of a command that groups
// subcommands: with no argument it shows the help; with one, that is no
// command, a usage error (exit 2). urfave's default said "No help topic"
// and exited 3.
func unknownCommand(c *cli.Context) error {
	name := commandName(c)
	if name == "lamina" && (c.Args().First() == "help" || c.Args().First() == "h") {
		return helpFor(c, c.Args().Slice()[1:])
	}
	if c.NArg() > 0 {
		return exitf(2, "%s has no command %q (%s --help lists them)", name, c.Args().First(), name)
	}
	if name == "lamina" {
		return cli.ShowAppHelp(c)
	}
	return cli.ShowSubcommandHelp(c)
}

// helpFor is `lamina help [COMMAND [SUBCOMMAND]...]`, as every command
// group offers: what `lamina COMMAND SUBCOMMAND --help` prints. A name
// that is no command there is a usage error (exit 2), as a stray argument
// to any command is.
func helpFor(c *cli.Context, path []string) error {
	if len(path) == 0 {
		return cli.ShowAppHelp(c)
	}
	name, cmds := "lamina", c.App.Commands
	for i, p := range path {
		var cmd *cli.Command
		for _, x := range cmds {
			if x.HasName(p) {
				cmd = x
				break
			}
		}
		switch {
		case cmd != nil:
			name, cmds = name+" "+cmd.Name, cmd.Subcommands
			path[i] = cmd.Name
		case len(cmds) == 0:
			return exitf(2, "%s has no commands: %q is none (lamina help %s shows its usage)", name, p, strings.TrimPrefix(name, "lamina "))
		default:
			return exitf(2, "%s has no command %q (%s --help lists them)", name, p, name)
		}
	}
	// A fresh run of the command with --help: urfave sets up a nested
	// command's help (its name, its own commands) only when it runs.
	return Main(append(append([]string{"lamina"}, path...), "--help"), c.App.Writer, c.App.ErrWriter)
}

// commandName is "lamina" and the command c runs with the commands above
// it, as a user types it ("lamina ontology search"). Command.FullName
// names only the last one: its parents are not set on commands built
// as these are.
func commandName(c *cli.Context) string {
	var names []string
	for _, ctx := range c.Lineage() {
		if ctx.Command == nil || ctx.Command.Name == "" || ctx.Command.Name == c.App.Name {
			continue
		}
		names = append(names, ctx.Command.Name)
	}
	slices.Reverse(names)
	return strings.Join(append([]string{"lamina"}, names...), " ")
}
