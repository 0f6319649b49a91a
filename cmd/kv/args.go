package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kvmap/kv"
)

// flags are the command line's flags, global and per command. Flags may
// stand before or after the command.
type flags struct {
	url, ns, ttl, to, toNS, at, timeout string
	n                                   int
	json, yes, noTTL, help              bool
	clockOverride, skipBad, ttlFromEnv  bool
	version                             bool
	set                                 map[string]bool // flags given on the command line
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

var boolFlags = map[string]func(*flags){
	"json":           func(f *flags) { f.json = true },
	"yes":            func(f *flags) { f.yes = true },
	"no-ttl":         func(f *flags) { f.noTTL = true },
	"help":           func(f *flags) { f.help = true },
	"clock-override": func(f *flags) { f.clockOverride = true },
	"skip-bad":       func(f *flags) { f.skipBad = true },
	"version":        func(f *flags) { f.version = true },
	"h":              func(f *flags) { f.help = true },
}

var valueFlags = map[string]func(*flags, string) error{
	"url":     func(f *flags, v string) error { f.url = v; return nil },
	"ns":      func(f *flags, v string) error { f.ns = v; return nil },
	"ttl":     func(f *flags, v string) error { f.ttl = v; return nil },
	"to":      func(f *flags, v string) error { f.to = v; return nil },
	"to-ns":   func(f *flags, v string) error { f.toNS = v; return nil },
	"at":      func(f *flags, v string) error { f.at = v; return nil },
	"timeout": func(f *flags, v string) error { f.timeout = v; return nil },
	"n": func(f *flags, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return usagef("--n %q: want a positive number", v)
		}
		f.n = n
		return nil
	},
}

// parseArgs splits args into flags and positional arguments. "--" ends the
// flags; an argument that parses as a number ("-1") stays positional.
func parseArgs(args []string) (flags, []string, error) {
	f := flags{set: map[string]bool{}}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" || isNumber(a) {
			pos = append(pos, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if set, ok := boolFlags[name]; ok {
			if hasValue {
				b, err := strconv.ParseBool(value)
				if err != nil {
					return f, nil, usagef("flag --%s takes no value", name)
				}
				if !b {
					continue
				}
			}
			set(&f)
			f.set[name] = true
			continue
		}
		set, ok := valueFlags[name]
		if !ok {
			return f, nil, usagef("unknown flag %s", a)
		}
		if !hasValue {
			if i+1 >= len(args) {
				return f, nil, usagef("flag --%s needs a value", name)
			}
			i++
			value = args[i]
		}
		if err := set(&f, value); err != nil {
			return f, nil, err
		}
		f.set[name] = true
	}
	return f, pos, nil
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// parseTTL reads a TTL as the command line gives it: a Go duration, or -1
// for none. 0 and other negative values are refused.
func parseTTL(s string) (time.Duration, error) {
	if s == "-1" {
		return kv.NoTTL, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, usagef("TTL %q: want a Go duration such as 90s or 5m, or -1 for none", s)
	}
	if d <= 0 {
		return 0, usagef("TTL %q: want a positive duration, or -1 for none", s)
	}
	return d, nil
}
