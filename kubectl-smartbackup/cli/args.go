package cli

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/smartbackup/smartbackup/internal/layout"
)

// Verbs of the plugin.
const (
	VerbStatus  = "status"
	VerbHistory = "history"
	VerbRestore = "restore"
	VerbVerify  = "verify"
	VerbBackup  = "backup"
	VerbHelp    = "help"
)

// Output formats.
const (
	OutputTable = "table"
	OutputJSON  = "json"
)

// Command is a parsed command line: what Parse accepts, and what Args renders back.
type Command struct {
	Verb string
	// Namespaces are the positional namespaces (status: any number; history, restore,
	// verify, backup: exactly one).
	Namespaces []string
	// AllNamespaces: status of every namespace that opted in (-A).
	AllNamespaces bool
	// Own: restore from the namespace's own latest backup, not its production source.
	Own bool
	// Apply: perform the restore's steps instead of printing them.
	Apply bool
	// RequestID is the restore request's id (default: manual-<UTC time>).
	RequestID string
	// Wait: verify and backup wait for their Job and print its outcome.
	Wait bool
	// Output is OutputTable or OutputJSON.
	Output string
	// Kubeconfig and Context choose the cluster (default: kubectl's loading rules).
	Kubeconfig string
	Context    string
	// Store overrides the storage URL the namespace's backup CronJob names (the
	// operator's own way to the bucket, or a mount of the volume).
	Store string
	// Topic is the verb help was asked about.
	Topic string
}

// flagSpec is one flag: the verbs it belongs to (nil: every verb) and whether it takes a
// value.
type flagSpec struct {
	names []string
	verbs []string
	value bool
	set   func(c *Command, v string) error
}

var flags = []flagSpec{
	{names: []string{"--kubeconfig"}, value: true, set: func(c *Command, v string) error { c.Kubeconfig = v; return nil }},
	{names: []string{"--context"}, value: true, set: func(c *Command, v string) error { c.Context = v; return nil }},
	{names: []string{"--store"}, verbs: []string{VerbStatus, VerbHistory}, value: true, set: func(c *Command, v string) error { c.Store = v; return nil }},
	{names: []string{"-o", "--output"}, verbs: []string{VerbStatus, VerbHistory}, value: true, set: func(c *Command, v string) error {
		if v != OutputTable && v != OutputJSON {
			return fmt.Errorf("output %q is not %s or %s", v, OutputTable, OutputJSON)
		}
		c.Output = v
		return nil
	}},
	{names: []string{"-A", "--all-namespaces"}, verbs: []string{VerbStatus}, set: func(c *Command, _ string) error { c.AllNamespaces = true; return nil }},
	{names: []string{"--own"}, verbs: []string{VerbRestore}, set: func(c *Command, _ string) error { c.Own = true; return nil }},
	{names: []string{"--apply"}, verbs: []string{VerbRestore}, set: func(c *Command, _ string) error { c.Apply = true; return nil }},
	{names: []string{"--id"}, verbs: []string{VerbRestore}, value: true, set: func(c *Command, v string) error {
		if err := validRequestID(v); err != nil {
			return err
		}
		c.RequestID = v
		return nil
	}},
	{names: []string{"--wait"}, verbs: []string{VerbVerify, VerbBackup}, set: func(c *Command, _ string) error { c.Wait = true; return nil }},
}

// UsageError is a command line the plugin does not accept.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

func usageErr(format string, args ...any) error {
	return &UsageError{msg: fmt.Sprintf(format, args...)}
}

// Parse reads the arguments after `kubectl smartbackup`. Flags may come before or
// after the namespaces, as with kubectl; `--` ends the flags.
func Parse(args []string) (Command, error) {
	c := Command{Output: OutputTable}
	if len(args) == 0 {
		return Command{}, usageErr("a command is needed: status, history, restore, verify or backup")
	}
	c.Verb = args[0]
	switch c.Verb {
	case "-h", "--help":
		c.Verb = VerbHelp
	case VerbHelp:
		if len(args) > 2 {
			return Command{}, usageErr("help takes at most one command")
		}
		if len(args) == 2 {
			if !slices.Contains([]string{VerbStatus, VerbHistory, VerbRestore, VerbVerify, VerbBackup}, args[1]) {
				return Command{}, usageErr("no help on %q", args[1])
			}
			c.Topic = args[1]
		}
		return c, nil
	case VerbStatus, VerbHistory, VerbRestore, VerbVerify, VerbBackup:
	default:
		return Command{}, usageErr("unknown command %q: status, history, restore, verify or backup", printable(c.Verb))
	}
	if c.Verb == VerbHelp {
		return c, nil
	}
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			c.Namespaces = append(c.Namespaces, rest[i+1:]...)
			break
		}
		if a == "-h" || a == "--help" {
			return Command{Verb: VerbHelp, Topic: c.Verb, Output: OutputTable}, nil
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			c.Namespaces = append(c.Namespaces, a)
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		spec, ok := lookup(name)
		if !ok {
			return Command{}, usageErr("unknown flag %q", printable(name))
		}
		if spec.verbs != nil && !slices.Contains(spec.verbs, c.Verb) {
			return Command{}, usageErr("%s does not apply to %s", name, c.Verb)
		}
		if spec.value && !hasValue {
			if i+1 >= len(rest) {
				return Command{}, usageErr("%s needs a value", name)
			}
			i++
			value = rest[i]
		} else if !spec.value && hasValue {
			return Command{}, usageErr("%s takes no value", name)
		}
		if err := spec.set(&c, value); err != nil {
			return Command{}, usageErr("%s: %v", name, err)
		}
	}
	for _, ns := range c.Namespaces {
		if err := layout.ValidNamespace(ns); err != nil {
			return Command{}, usageErr("%s", printable(err.Error()))
		}
	}
	switch {
	case c.Verb == VerbStatus && c.AllNamespaces && len(c.Namespaces) > 0:
		return Command{}, usageErr("status takes -A or namespaces, not both")
	case c.Verb != VerbStatus && len(c.Namespaces) != 1:
		return Command{}, usageErr("%s takes exactly one namespace", c.Verb)
	}
	return c, nil
}

// Args renders c back as a command line Parse reads as c.
func (c Command) Args() []string {
	if c.Verb == VerbHelp {
		if c.Topic != "" {
			return []string{VerbHelp, c.Topic}
		}
		return []string{VerbHelp}
	}
	out := []string{c.Verb}
	add := func(name, value string) {
		if value != "" {
			out = append(out, name+"="+value)
		}
	}
	add("--kubeconfig", c.Kubeconfig)
	add("--context", c.Context)
	add("--store", c.Store)
	if c.Output != OutputTable {
		add("--output", c.Output)
	}
	add("--id", c.RequestID)
	for _, b := range []struct {
		on   bool
		name string
	}{{c.AllNamespaces, "-A"}, {c.Own, "--own"}, {c.Apply, "--apply"}, {c.Wait, "--wait"}} {
		if b.on {
			out = append(out, b.name)
		}
	}
	if len(c.Namespaces) > 0 {
		out = append(out, "--")
		out = append(out, c.Namespaces...)
	}
	return out
}

func lookup(name string) (flagSpec, bool) {
	for _, f := range flags {
		if slices.Contains(f.names, name) {
			return f, true
		}
	}
	return flagSpec{}, false
}

// validRequestID accepts what a namespace annotation value and one log line can carry.
func validRequestID(id string) error {
	if id == "" || len(id) > 128 || !utf8.ValidString(id) {
		return errors.New("the request id must be 1 to 128 characters of UTF-8")
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return errors.New("the request id must be one line without control characters")
		}
	}
	return nil
}

// printable quotes what a user typed for an error message, cut to a readable length.
func printable(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
