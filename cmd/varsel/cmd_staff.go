package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/staff"
)

// cmdStaff manages the console's staff accounts:
// varsel staff add --email E --name N [--locale nb] --password-stdin | list | remove EMAIL.
// staffGroup is `varsel staff`.
var staffGroup = group{name: "staff", about: "Manage who may sign in to the staff console.", subs: []subcommand{
	{"add", "--email E --name N [--locale en|nb] --password-stdin", "add an account, or replace its name, language and password (the password on standard input)"},
	{"list", "", "every staff account"},
	{"remove", "EMAIL", "remove an account; its sessions end at once"},
}}

func cmdStaff(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	cmd, args, err := staffGroup.pick(args, stdout)
	if err != nil {
		return err
	}
	sub := cmd.name
	fs := staffGroup.flags(cmd, stdout)
	natsURL := natsFlag(fs)
	var email, name, locale string
	var fromStdin bool
	if sub == "add" {
		fs.StringVar(&email, "email", "", "email address, the sign-in name (required)")
		fs.StringVar(&name, "name", "", "name, shown in the console and in the audit trail (required)")
		fs.StringVar(&locale, "locale", "en", "the console's language for them: en or nb")
		fs.BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of standard input (required)")
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case sub == "add" && (email == "" || name == "" || !fromStdin || len(pos) != 0):
		return fmt.Errorf("%w: varsel staff add --email E --name N [--locale en|nb] --password-stdin (the password comes on standard input, never on the command line)", errUsage)
	case sub == "remove" && len(pos) != 1:
		return fmt.Errorf("%w: varsel staff remove EMAIL", errUsage)
	case sub == "list" && len(pos) != 0:
		return fmt.Errorf("%w: varsel staff list", errUsage)
	}
	var account *staff.Account
	if sub == "add" {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read the password from standard input: %w", err)
		}
		// Check (and hash) before connecting: a bad account needs no NATS.
		if account, err = staff.NewAccount(email, name, locale, strings.TrimRight(line, "\r\n")); err != nil {
			return err
		}
	}
	c, err := connect(ctx, natsURL)
	if err != nil {
		return err
	}
	defer c.Close()
	switch sub {
	case "add":
		_, err := c.Staff.Get(ctx, account.Email)
		replaced := err == nil
		if err := c.Staff.Put(ctx, account); err != nil {
			return err
		}
		verb := "added"
		if replaced {
			verb = "replaced (new name, language and password; its sessions end at once)"
		}
		fmt.Fprintf(stdout, "staff %s %s: %s, console in %s\n", account.Email, verb, account.Name, account.Locale)
	case "list":
		all, err := c.Staff.List(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "EMAIL\tNAME\tLANGUAGE\tADDED")
		for _, a := range all {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", a.Email, a.Name, a.Locale, a.CreatedAt.Format("2006-01-02 15:04 MST"))
		}
		w.Flush()
		fmt.Fprintf(stdout, "%d staff\n", len(all))
	case "remove":
		if err := c.Staff.Delete(ctx, pos[0]); errors.Is(err, notifier.ErrNotFound) {
			return fmt.Errorf("no staff account %s", pos[0])
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "staff %s removed; their sessions end at once\n", strings.ToLower(pos[0]))
	}
	return nil
}
