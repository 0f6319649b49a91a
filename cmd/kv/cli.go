package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// short is the one-line help of each command, as kv help lists it.
var short = map[string]string{
	"set":        "store VALUE under KEY with the --ttl in force (- reads the value from stdin)",
	"get":        "print the value of KEY (exit 1 if missing)",
	"has":        "print true or false (exit 0 or 1)",
	"del":        "delete keys (missing keys are fine)",
	"ttl":        "print the remaining TTL of KEY, or -1 for none",
	"expire":     "set the TTL of KEY (a Go duration, or -1 for none)",
	"keys":       "print every key of the namespace, one per line",
	"ls":         "print key<TAB>value per line (\\t \\n \\\\ escaped)",
	"size":       "print the number of keys of the namespace",
	"clear":      "delete every key of the namespace (needs --yes)",
	"namespaces": "list the namespaces of the backend with their key counts",
	"export":     "write the namespace as JSON lines to FILE, or stdout (no FILE, or -)",
	"import":     "read JSON lines from FILE, or stdin (no FILE, or -), in batches",
	"copy":       "copy every key with its TTL to --to URL [--to-ns NS]",
	"check":      "run the full consistency check of a bolt file (exit 1 on problems)",
	"bench":      "a short workload against --url: ops/s, p50, p99 [--n N]",
	"demo":       "a tour on a temporary bolt file, no server needed",
	"version":    "print the command's version",
}

// order is the order kv help lists the commands in.
var order = []string{"set", "get", "has", "del", "ttl", "expire", "keys", "ls", "size", "clear",
	"export", "import", "copy", "namespaces", "check", "bench", "demo", "version"}

const rootLong = `kv works on the namespaces of any kv backend from the shell: look into a
namespace, fix a key, or snapshot production Redis data into a bolt file for
an offline backtest.

Flags go before or after the command; "--" ends them (for a key or value that
starts with -); a number such as -1 stays an argument. Commands that only
read (get, has, ttl, keys, ls, size, namespaces, export, check, the source of
copy) open a bolt file read-only: they never create or change it.

URLs: mem://, bolt://PATH[?ro=1], redis://[user:pass@]host:port[/db],
rediss://..., redis+cluster://host:port?addr=host:port,
redis+sentinel://host:port?master=NAME (add ?hashtag=1 for hash-tag mode).
Defaults: --url $KV_URL, else bolt://./kv.db; --ns $KV_NS; --ttl $KV_TTL,
else 5m.

Exit codes: 0 success, 1 not found or failed, 2 usage error, 130 interrupted.`

// valueFlags are the flags that take a value: the argument after one of
// them is its value, even when it looks like a negative number.
var valueFlags = map[string]bool{"url": true, "ns": true, "ttl": true, "to": true, "to-ns": true,
	"n": true, "at": true, "timeout": true}

// numberMark keeps a negative number ("-1") from being read as a flag: pflag
// reads "-1" as the shorthand flag 1. The mark is removed from arguments and
// flag values after parsing.
const numberMark = "\x00"

// markNumbers marks the arguments that are negative numbers and are not the
// value of a flag given as "--flag value".
func markNumbers(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" && isNumber(a) {
			prev := ""
			if i > 0 {
				prev = strings.TrimLeft(args[i-1], "-")
			}
			if !(strings.HasPrefix(args[max(i-1, 0)], "-") && valueFlags[prev]) {
				out[i] = numberMark + a
			}
		}
	}
	return out
}

func unmark(s string) string { return strings.TrimPrefix(s, numberMark) }

// newRoot builds the command tree over e: the flags go into c.f, and the
// command that runs sets c.name and c.args.
func (e *env) newRoot(ctx context.Context, c *cmdCtx) *cobra.Command {
	f := &c.f
	root := &cobra.Command{
		Use:           "kv",
		Short:         "a namespaced, TTL-aware key-value map over Redis, bbolt or memory",
		Long:          rootLong,
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
		// Suggestions for mistyped commands (kv GET k: did you mean get?).
		SuggestionsMinimumDistance: 2,
	}
	root.SetVersionTemplate("kv {{.Version}}\n")
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.CompletionOptions.HiddenDefaultCmd = false
	pf := root.PersistentFlags()
	pf.StringVar(&f.url, "url", "", "backend URL (default $KV_URL, else bolt://./kv.db)")
	pf.StringVar(&f.ns, "ns", "", "namespace (default $KV_NS)")
	pf.StringVar(&f.ttl, "ttl", "", "TTL of writes: a Go duration, or -1 for none (default $KV_TTL, else 5m)")
	pf.BoolVar(&f.json, "json", false, "JSON lines output, numbers as numbers")
	pf.StringVar(&f.timeout, "timeout", "", "the longest one store round trip may take, never a whole command (default 10s; 0 for none)")
	pf.StringVar(&f.at, "at", "", `read a bolt file as of TIME (RFC 3339), or "file" for the latest time of its clock`)
	pf.BoolVar(&f.clockOverride, "clock-override", false, "write to a bolt file written under a simulated clock with the wall clock")
	pf.BoolVar(&f.yes, "yes", false, "confirm clear")
	pf.BoolVar(&f.noTTL, "no-ttl", false, "import or copy without TTLs")
	pf.BoolVar(&f.skipBad, "skip-bad", false, "import: skip and count bad lines instead of stopping")
	pf.StringVar(&f.to, "to", "", "copy: the target URL")
	pf.StringVar(&f.toNS, "to-ns", "", "copy: the target namespace (default --ns)")
	pf.IntVar(&f.n, "n", 0, "bench: operations per kind (default 1000)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return flagError(err) })
	root.PersistentPreRun = func(*cobra.Command, []string) { e.defaults(f) }

	for _, name := range order {
		cmd := commands[name]
		use := name
		if cmd.args != "" {
			use += " " + cmd.args
		}
		sub := &cobra.Command{
			Use:               use,
			Short:             short[name],
			Args:              argsRange(name, cmd),
			DisableAutoGenTag: true,
			RunE: func(_ *cobra.Command, args []string) error {
				for i := range args {
					args[i] = unmark(args[i])
				}
				c.name, c.args = name, args
				if err := c.dispatch(ctx, cmd); err != nil {
					return runErr{err}
				}
				return nil
			},
		}
		root.AddCommand(sub)
	}
	return root
}

// argsRange checks the number of positional arguments of a command.
func argsRange(name string, cmd command) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < cmd.minArgs || (cmd.maxArgs >= 0 && len(args) > cmd.maxArgs) {
			return usagef("usage: kv %s %s", name, cmd.args)
		}
		return nil
	}
}

// runErr carries the error of a command that ran, as opposed to one of the
// command line.
type runErr struct{ err error }

func (e runErr) Error() string { return e.err.Error() }
func (e runErr) Unwrap() error { return e.err }

// flagError turns a flag parsing error into a usage error, with the hint
// that a key starting with "-" goes after "--".
func flagError(err error) error {
	msg := err.Error()
	if strings.Contains(msg, "unknown shorthand flag") || strings.Contains(msg, "unknown flag") {
		msg += `; a key or value starting with - goes after --: kv get -- -key`
	}
	return usagef("%s", msg)
}

// cobraUsage turns an error of the command line that cobra reports into a
// one-line usage error ("unknown command "GET" for "kv"\n\nDid you mean
// this?\n\tget" becomes one line).
func cobraUsage(err error) error {
	var u *usageError
	if errors.As(err, &u) {
		return err
	}
	msg := strings.TrimSpace(err.Error())
	if head, tail, ok := strings.Cut(msg, "\n\nDid you mean this?\n"); ok {
		suggestions := strings.Fields(tail)
		// A command typed in the wrong case is that command, not a guess.
		var typed string
		if _, err := fmt.Sscanf(head, "unknown command %q", &typed); err == nil {
			if _, ok := commands[strings.ToLower(typed)]; ok {
				suggestions = []string{strings.ToLower(typed)}
			}
		}
		msg = fmt.Sprintf("%s (did you mean %s?)", head, strings.Join(suggestions, ", "))
	}
	msg = strings.ReplaceAll(msg, "\n", " ")
	return usagef("%s (see kv help)", msg)
}
