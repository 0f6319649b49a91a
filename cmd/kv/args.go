package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/kvmap/kv"
)

// flags are the command line's flags (see newRoot). Flags may stand before
// or after the command.
type flags struct {
	url, ns, ttl, to, toNS, at, timeout string
	n                                   int
	sample                              int // stats: --sample
	json, yes, noTTL                    bool
	clockOverride, skipBad              bool
	ttlFromEnv                          bool // --ttl came from KV_TTL
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

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
