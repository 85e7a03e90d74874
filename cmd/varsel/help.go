package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// errHelp marks a command line that asked for help and got it (exit 0).
var errHelp = errors.New("help printed")

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// newFlags returns the flag set of one command: -h, --help or a lone
// `help` prints its usage (the synopsis, what it does, its own flags) to
// out, and parse returns errHelp.
func newFlags(name, synopsis, about string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s\n", synopsis)
		if about != "" {
			fmt.Fprintf(w, "\n%s\n", about)
		}
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(w, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// subcommand is one subcommand of a group: its name, the arguments it
// takes and what it does.
type subcommand struct {
	name, args, about string
}

// group is a command made of subcommands (varsel subscribers, deliveries, …).
type group struct {
	name  string
	about string
	subs  []subcommand
}

// usage lists the group's subcommands.
func (g group) usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: varsel %s COMMAND\n\n%s\n\nCommands:\n", g.name, g.about)
	width := 0
	for _, s := range g.subs {
		width = max(width, len(s.name)+1+len(s.args))
	}
	for _, s := range g.subs {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, strings.TrimSpace(s.name+" "+s.args), s.about)
	}
	fmt.Fprintf(&b, "\nRun 'varsel %s COMMAND -h' for a command's flags.\n", g.name)
	return b.String()
}

// pick finds the subcommand args name. The group's own -h prints the
// list of subcommands to out (errHelp); none or an unknown one is a usage
// error that carries the list.
func (g group) pick(args []string, out io.Writer) (*subcommand, []string, error) {
	names := make([]string, len(g.subs))
	for i, s := range g.subs {
		names[i] = s.name
	}
	if len(args) == 0 {
		return nil, nil, fmt.Errorf("%w: varsel %s needs a command (%s)\n\n%s", errUsage, g.name, strings.Join(names, ", "), g.usage())
	}
	if isHelp(args[0]) {
		fmt.Fprint(out, g.usage())
		return nil, nil, errHelp
	}
	i := slices.Index(names, args[0])
	if i < 0 {
		return nil, nil, fmt.Errorf("%w: unknown %s command %q (want %s)\n\n%s", errUsage, g.name, args[0], strings.Join(names, ", "), g.usage())
	}
	return &g.subs[i], args[1:], nil
}

// flags returns the flag set of one of the group's subcommands.
func (g group) flags(s *subcommand, out io.Writer) *flag.FlagSet {
	name := "varsel " + g.name + " " + s.name
	about := strings.ToUpper(s.about[:1]) + s.about[1:] + "."
	return newFlags(name, strings.TrimSpace(name+" "+s.args), about, out)
}
