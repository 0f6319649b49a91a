package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
	"stats":      "key count, value sizes and TTLs of --ns (or of every namespace), with histograms",
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
	"export", "import", "copy", "namespaces", "stats", "check", "bench", "demo", "version"}

// examples is the example of each command, as its help shows it.
var examples = map[string]string{
	"set": `  kv --ns signal_cache set binance:s:BTC/USDT:USDT 66f1c0ffee
  kv --ns signal_cache --ttl 1h set k v
  kv --ns blobs set big - < value.bin`,
	"get":    `  kv --ns signal_cache get binance:s:BTC/USDT:USDT`,
	"has":    `  kv --ns signal_cache has binance:s:BTC/USDT:USDT && echo cached`,
	"del":    `  kv --ns signal_cache del k1 k2`,
	"ttl":    `  kv --ns signal_cache ttl k1`,
	"expire": "  kv --ns signal_cache expire k1 90s\n  kv --ns signal_cache expire k1 -1    # never expires",
	"keys":   `  kv --ns signal_cache keys | wc -l`,
	"ls": `  kv --ns signal_cache ls
  kv --ns signal_cache ls --json`,
	"size":       `  kv --ns signal_cache size`,
	"clear":      `  kv --ns signal_cache clear --yes`,
	"namespaces": `  kv --url redis://127.0.0.1:6379 namespaces`,
	"stats": `  kv --url redis://127.0.0.1:6379 --ns signal_cache stats
  kv --url bolt://./backtest.db stats --at 2021-01-01T00:03:00Z --sample 0 --json`,
	"export": `  kv --ns signal_cache export sig.jsonl
  kv --url bolt://./backtest.db --ns candle_cache export --at file > replay.jsonl`,
	"import": `  kv --ns signal_cache import sig.jsonl
  kv --ns signal_cache --ttl=-1 import - < sig.jsonl    # records without ttl_ms never expire`,
	"copy":    `  kv --url redis://prod-redis:6379 --ns signal_cache copy --to bolt://./backtest.db --no-ttl`,
	"check":   `  kv --url bolt://./backtest.db check`,
	"bench":   `  kv --url redis://127.0.0.1:6379 bench --n 2000`,
	"demo":    `  kv demo`,
	"version": `  kv version`,
}

// flagsOf are the flags of each command: the help of a command lists these,
// and any other is an unknown flag.
var flagsOf = map[string][]string{
	"set":        {"url", "ns", "ttl", "timeout", "clock-override", "json"},
	"get":        {"url", "ns", "timeout", "at", "json"},
	"has":        {"url", "ns", "timeout", "at", "json"},
	"del":        {"url", "ns", "timeout", "clock-override", "json"},
	"ttl":        {"url", "ns", "timeout", "at", "json"},
	"expire":     {"url", "ns", "timeout", "clock-override", "json"},
	"keys":       {"url", "ns", "timeout", "at", "json"},
	"ls":         {"url", "ns", "timeout", "at", "json"},
	"size":       {"url", "ns", "timeout", "at", "json"},
	"clear":      {"url", "ns", "yes", "timeout", "clock-override", "json"},
	"namespaces": {"url", "timeout", "at", "json"},
	"stats":      {"url", "ns", "sample", "timeout", "at", "json"},
	"export":     {"url", "ns", "timeout", "at", "json"},
	"import":     {"url", "ns", "ttl", "no-ttl", "skip-bad", "timeout", "clock-override", "json"},
	"copy":       {"url", "ns", "to", "to-ns", "no-ttl", "timeout", "at", "clock-override", "json"},
	"check":      {"url", "timeout", "json"}, // a check judges no expiry: no --at
	"bench":      {"url", "n", "timeout", "clock-override", "json"},
	"demo":       {"json"},
	"version":    {"json"},
}

// maxBenchN is the largest --n of bench: its keys are held in memory.
const maxBenchN = 10_000_000

// defineFlag defines flag name on the local flags of cmd, bound to its
// field of f.
func defineFlag(cmd *cobra.Command, f *flags, name string) {
	fs := cmd.Flags()
	switch name {
	case "url":
		fs.StringVar(&f.url, "url", "", "backend URL (default $KV_URL, else bolt://./kv.db)")
	case "ns":
		fs.StringVar(&f.ns, "ns", "", "namespace (default $KV_NS)")
	case "ttl":
		fs.StringVar(&f.ttl, "ttl", "", "TTL of the keys written: a Go duration, or -1 for none (default $KV_TTL, else 5m)")
	case "json":
		usage := "JSON lines output, numbers as numbers (text that is not UTF-8 in a _b64 field)"
		switch cmd.Name() {
		case "export":
			usage = `print the summary as a JSON line, {"exported":N}: on stdout, or on stderr when the records go to stdout`
		case "import", "copy", "clear":
			usage = "print the summary as a JSON line on stdout"
		case "stats":
			usage = "print the numbers as one JSON object on a line (kv help stats names its fields)"
		}
		fs.BoolVar(&f.json, "json", false, usage)
	case "timeout":
		fs.StringVar(&f.timeout, "timeout", "", "the longest one store round trip may take, never a whole command (default 10s; 0 for none)")
	case "at":
		fs.StringVar(&f.at, "at", "", `bolt files: expire keys as of TIME (RFC 3339) instead of now, or "file" for the latest time of the file's clock`)
	case "clock-override":
		fs.BoolVar(&f.clockOverride, "clock-override", false, "write to a bolt file written under a simulated clock, with the wall clock")
	case "yes":
		fs.BoolVar(&f.yes, "yes", false, "confirm: delete every key of the namespace")
	case "no-ttl":
		fs.BoolVar(&f.noTTL, "no-ttl", false, "write every key without a TTL")
	case "skip-bad":
		fs.BoolVar(&f.skipBad, "skip-bad", false, "skip and count bad lines instead of stopping")
	case "to":
		fs.StringVar(&f.to, "to", "", "the target URL")
	case "to-ns":
		fs.StringVar(&f.toNS, "to-ns", "", "the target namespace (default --ns)")
	case "n":
		fs.IntVar(&f.n, "n", 1000, fmt.Sprintf("operations per kind, 1 to %d", maxBenchN))
	case "sample":
		fs.IntVar(&f.sample, "sample", defaultSample, fmt.Sprintf("read the values and TTLs of a uniform sample of this many keys, 0 to %d (0: every key)", maxSample))
	default:
		panic("kv: no flag " + name) // a mistake in flagsOf, found by every test
	}
}

// hasFlag reports whether command name takes flag.
func hasFlag(name, flag string) bool { return slices.Contains(flagsOf[name], flag) }

const rootLong = `kv works on the namespaces of any kv backend from the shell: look into a
namespace, fix a key, or snapshot production Redis data into a bolt file for
an offline backtest.

Each command takes its own flags ("kv help COMMAND" lists them and gives an
example): --url and --timeout every command on a store, --ns every command
on a namespace, --json every command. Flags go before or after the command;
"--" ends them (for a key or value that starts with -); a number such as -1
stays an argument. Commands that only read (get, has, ttl, keys, ls, size,
namespaces, stats, export, check, the source of copy) open a bolt file
read-only: they never create or change it.

URLs: mem://, bolt://PATH[?ro=1], redis://[user:pass@]host:port[/db],
rediss://..., redis+cluster://host:port?addr=host:port,
redis+sentinel://host:port?master=NAME (add ?hashtag=1 for hash-tag mode).
Defaults: --url $KV_URL, else bolt://./kv.db; --ns $KV_NS; --ttl $KV_TTL,
else 5m. Messages never show a URL's password, wherever it was typed.

Exit codes: 0 success, 1 not found or failed, 2 usage error, 130 interrupted
(Ctrl-C; 128+N for another signal N: 129 SIGHUP, 131 SIGQUIT, 143 SIGTERM).`

// valueFlags are the flags that take a value: the argument after one of
// them is its value, even when it looks like a negative number.
var valueFlags = map[string]bool{"url": true, "ns": true, "ttl": true, "to": true, "to-ns": true,
	"n": true, "at": true, "timeout": true, "sample": true}

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
	// The root knows every flag, hidden, only so that flags before the
	// command are told from it (in "kv --json get k", --json takes no
	// value); the command that runs parses them with its own.
	seen := map[string]bool{}
	for _, name := range order {
		for _, fl := range flagsOf[name] {
			if !seen[fl] {
				seen[fl] = true
				defineFlag(root, f, fl)
				if err := root.Flags().MarkHidden(fl); err != nil {
					panic(err) // the flag was just defined
				}
			}
		}
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return flagError(cmd, err) })
	root.PersistentPreRun = func(cmd *cobra.Command, _ []string) { e.defaults(f, cmd.Flags().Lookup("ttl") != nil) }
	root.SetHelpCommand(helpCommand(root))

	for _, name := range order {
		cmd := commands[name]
		use := name
		if cmd.args != "" {
			use += " " + cmd.args
		}
		sub := &cobra.Command{
			Use:               use,
			Short:             short[name],
			Long:              long[name],
			Example:           examples[name],
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
		for _, fl := range flagsOf[name] {
			defineFlag(sub, f, fl)
		}
		sub.Flags().SortFlags = false // in the order of flagsOf
		root.AddCommand(sub)
	}
	completionCommand(root)
	return root
}

// completionExamples are the examples of "kv completion SHELL".
var completionExamples = map[string]string{
	"bash":       "  source <(kv completion bash)\n  kv completion bash > /etc/bash_completion.d/kv",
	"zsh":        "  kv completion zsh > \"${fpath[1]}/_kv\"",
	"fish":       "  kv completion fish > ~/.config/fish/completions/kv.fish",
	"powershell": "  kv completion powershell | Out-String | Invoke-Expression",
}

// completionCommand adds cobra's "kv completion SHELL" to root, with
// examples, and makes a missing or unknown shell a usage error (exit 2):
// cobra prints the help and exits 0.
func completionCommand(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, comp := range root.Commands() {
		if comp.Name() != "completion" {
			continue
		}
		comp.Example = "  source <(kv completion bash)\n  kv completion zsh > \"${fpath[1]}/_kv\"\n  kv help completion bash"
		comp.Args = cobra.ArbitraryArgs
		comp.RunE = func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("usage: kv completion bash|zsh|fish|powershell (kv help completion)")
			}
			return usagef("kv completion %q: unknown shell, want bash, zsh, fish or powershell", args[0])
		}
		for _, shell := range comp.Commands() {
			shell.Example = completionExamples[shell.Name()]
		}
	}
}

// helpRequest returns the words of a command line that asks for help with
// -h or --help (anywhere before "--"): the command (and any arguments) it
// names, with the flags and their values left out.
func helpRequest(args []string) ([]string, bool) {
	if len(args) > 0 && strings.HasPrefix(args[0], "__complete") {
		return nil, false // cobra's completion requests
	}
	var words []string
	asked := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return words, asked
		case a == "-h" || a == "--help":
			asked = true
		case strings.HasPrefix(a, "--help="):
			on, err := strconv.ParseBool(strings.TrimPrefix(a, "--help="))
			asked = asked || (err == nil && on)
		case strings.HasPrefix(a, "--"):
			if !strings.Contains(a, "=") && valueFlags[a[2:]] {
				i++ // its value
			}
		case strings.HasPrefix(a, "-") && a != "-" && !isNumber(a):
			// an unknown short flag: the command says so
		default:
			words = append(words, a)
		}
	}
	return words, asked
}

// helpFor prints the help of the command that words name, as "kv help
// WORDS" would, except that arguments after the command are its own: "kv
// get k --help" is the help of get. Words that name no command are a usage
// error: "kv --help bogus" is "kv help bogus".
func helpFor(root *cobra.Command, words []string) error {
	if len(words) == 0 {
		return root.Help()
	}
	cmd, _, err := root.Find(words)
	if err != nil || cmd == root {
		return usagef("unknown help topic %q (kv help lists the commands)", strings.Join(words, " "))
	}
	return cmd.Help()
}

// helpCommand is "kv help [COMMAND]": the usage, flags and example of
// COMMAND, or the list of commands. An unknown topic is a usage error (exit
// 2), not the list and exit 0.
func helpCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:     "help [COMMAND]",
		Short:   "print the usage, flags and an example of COMMAND",
		Example: "  kv help export",
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, c := range root.Commands() {
				if c.IsAvailableCommand() {
					names = append(names, cobra.CompletionWithDesc(c.Name(), c.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return root.Help()
			}
			cmd, rest, err := root.Find(args)
			if err != nil || cmd == root || len(rest) > 0 {
				return usagef("unknown help topic %q (kv help lists the commands)", strings.Join(args, " "))
			}
			return cmd.Help()
		},
	}
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

// flagError turns a flag parsing error of cmd into a usage error: a flag of
// another command says so, and an unknown one gets the hint that a key
// starting with "-" goes after "--".
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		var users []string
		for _, c := range order {
			if hasFlag(c, name) {
				users = append(users, c)
			}
		}
		if len(users) > 0 {
			return usagef("--%s is not a flag of %s, only of %s (kv help %s lists its flags)",
				name, cmd.Name(), strings.Join(users, ", "), cmd.Name())
		}
	}
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
