package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
)

// wireKey returns the key stored in Redis for the backend key k. Without the
// hash-tag mode it is k itself. In hash-tag mode the namespace part of k, the
// text before the first ":", is wrapped in braces ("ns:key" is stored as
// "{ns}:key") so that every key of a namespace lands in one cluster slot; a
// key without ":" is stored as is.
func (b *Backend) wireKey(k string) (string, error) {
	if !b.hashTag {
		return k, nil
	}
	ns, rest, ok := strings.Cut(k, ":")
	if !ok {
		return k, nil
	}
	if strings.ContainsAny(ns, "{}") {
		return "", fmt.Errorf("%w: %q holds a brace, which the hash-tag mode reserves", backend.ErrInvalidNamespace, ns)
	}
	return "{" + ns + "}:" + rest, nil
}

// wireKeys maps keys with wireKey.
func (b *Backend) wireKeys(keys []string) ([]string, error) {
	if err := backend.CheckKeys(keys); err != nil {
		return nil, err
	}
	if !b.hashTag {
		return keys, nil
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		w, err := b.wireKey(k)
		if err != nil {
			return nil, err
		}
		out[i] = w
	}
	return out, nil
}

// backendKey is the inverse of wireKey.
func (b *Backend) backendKey(w string) string {
	if !b.hashTag || !strings.HasPrefix(w, "{") {
		return w
	}
	if ns, rest, ok := strings.Cut(w[1:], "}:"); ok {
		return ns + ":" + rest
	}
	return w
}

// globEscape escapes the characters that SCAN MATCH treats as a pattern.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			sb.WriteByte('\\')
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

// matchPattern returns the SCAN MATCH pattern for a backend prefix, and
// whether the keys it returns still need filtering by prefix.
func (b *Backend) matchPattern(prefix string) (string, bool, error) {
	if !b.hashTag {
		return globEscape(prefix) + "*", false, nil
	}
	ns, rest, ok := strings.Cut(prefix, ":")
	if !ok {
		// No namespace in the prefix: scan everything and filter the keys
		// after mapping them back.
		return "*", prefix != "", nil
	}
	if strings.ContainsAny(ns, "{}") {
		return "", false, fmt.Errorf("%w: %q holds a brace, which the hash-tag mode reserves", backend.ErrInvalidNamespace, ns)
	}
	return "{" + globEscape(ns) + "}:" + globEscape(rest) + "*", false, nil
}

// tryAgain reports a TRYAGAIN reply on a cluster: a multi-key command met a
// slot being migrated with its keys split between the two masters, which
// go-redis retries only briefly.
func tryAgain(b *Backend, err error) bool {
	return err != nil && b.cluster != nil && goredis.IsTryAgainError(err)
}

// getEach reads the keys at idx of wire one by one with GET, in one
// pipeline on the cluster client, into out, with a PTTL of each in ttls
// when it is not nil: a single-key command is served where the key is,
// following an ASK redirection during a migration, and never meets
// TRYAGAIN.
func (b *Backend) getEach(ctx context.Context, wire []string, idx []int, out []backend.Value, ttls []*goredis.DurationCmd) error {
	pipe := b.client.Pipeline()
	gets := make([]*goredis.StringCmd, len(idx))
	for j, i := range idx {
		gets[j] = pipe.Get(ctx, wire[i])
		if ttls != nil {
			ttls[i] = pipe.PTTL(ctx, wire[i])
		}
	}
	_, err := pipe.Exec(ctx)
	if err := b.execErr(ctx, "GET", err); err != nil {
		return err
	}
	for j, i := range idx {
		if err := b.readGet(ctx, gets[j], &out[i]); err != nil {
			return err
		}
	}
	return nil
}

// readGet reads the reply of a GET into v: a missing key, or one of
// another Redis type, leaves v absent.
func (b *Backend) readGet(ctx context.Context, c *goredis.StringCmd, v *backend.Value) error {
	bs, err := c.Bytes()
	switch {
	case errors.Is(err, goredis.Nil), isWrongType(err): // absent
	case err != nil:
		return b.wrap(ctx, "GET", err)
	default:
		*v = backend.Value{Bytes: bs, Found: true}
	}
	return nil
}

// remaining returns the TTL of a key from its PTTL reply d (NoTTL for
// none, at least a millisecond), and false when the key does not exist.
func remaining(d time.Duration) (time.Duration, bool) {
	switch {
	case d == -2:
		return 0, false
	case d == -1:
		return backend.NoTTL, true
	case d < time.Millisecond:
		return time.Millisecond, true
	}
	return d, true
}

// slotGroups returns the indexes of wire grouped by hash slot, in the order
// of each slot's first key.
func slotGroups(wire []string) [][]int {
	var groups [][]int
	at := map[int]int{} // slot -> index into groups
	for i, w := range wire {
		gi, ok := at[Slot(w)]
		if !ok {
			gi = len(groups)
			at[Slot(w)] = gi
			groups = append(groups, nil)
		}
		groups[gi] = append(groups[gi], i)
	}
	return groups
}

// pick returns the elements of s at idx.
func pick(s []string, idx []int) []string {
	out := make([]string, len(idx))
	for j, i := range idx {
		out[j] = s[i]
	}
	return out
}
