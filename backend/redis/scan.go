package redis

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
)

// Scan implements backend.Backend.Scan with SCAN MATCH prefix* TYPE string
// COUNT count. On a standalone server the cursor is SCAN's. On a cluster every
// master is scanned in turn (sorted by address) and the cursor is the
// topology, the master and its SCAN cursor: when the set of masters changes
// during a scan, the scan starts again from the first master, which may
// return keys twice but never misses one.
func (b *Backend) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	if err := b.check(ctx); err != nil {
		return backend.Page{}, err
	}
	if count <= 0 {
		count = 10
	}
	match, filter, err := b.matchPattern(prefix)
	if err != nil {
		return backend.Page{}, err
	}
	var (
		page backend.Page
		wire []string
	)
	if b.cluster == nil {
		cur, err := parseCursor(cursor)
		if err != nil {
			return backend.Page{}, err
		}
		var next uint64
		wire, next, err = b.client.ScanType(ctx, cur, match, int64(count), "string").Result()
		if err != nil {
			return backend.Page{}, wrap(ctx, "SCAN", err)
		}
		if next != 0 {
			page.Cursor = strconv.FormatUint(next, 10)
		}
	} else {
		if wire, page.Cursor, err = b.scanCluster(ctx, match, cursor, count); err != nil {
			return backend.Page{}, err
		}
	}
	page.Keys = b.fromWire(wire, prefix, filter)
	return page, nil
}

// fromWire maps scanned keys back to backend keys, in place, keeping only
// those under prefix when filter is set.
func (b *Backend) fromWire(wire []string, prefix string, filter bool) []string {
	if !b.hashTag {
		return wire
	}
	out := wire[:0]
	for _, w := range wire {
		k := b.backendKey(w)
		if !filter || strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

func parseCursor(cursor string) (uint64, error) {
	if cursor == "" {
		return 0, nil
	}
	cur, err := strconv.ParseUint(cursor, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis: invalid scan cursor %q", cursor)
	}
	return cur, nil
}

// masters returns the clients of the cluster's masters, sorted by address,
// and a token that changes when the set of masters does.
func (b *Backend) masters(ctx context.Context) ([]*goredis.Client, string, error) {
	var mu sync.Mutex
	var ms []*goredis.Client
	err := b.cluster.ForEachMaster(ctx, func(_ context.Context, c *goredis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		ms = append(ms, c)
		return nil
	})
	if err != nil {
		return nil, "", wrap(ctx, "CLUSTER", err)
	}
	slices.SortFunc(ms, func(a, b *goredis.Client) int { return strings.Compare(a.Options().Addr, b.Options().Addr) })
	h := fnv.New64a()
	for _, c := range ms {
		h.Write([]byte(c.Options().Addr))
		h.Write([]byte{0})
	}
	return ms, strconv.FormatUint(h.Sum64(), 36), nil
}

// scanCluster runs one SCAN step on one master. The cursor is
// "topology/master/cursor".
func (b *Backend) scanCluster(ctx context.Context, match, cursor string, count int) ([]string, string, error) {
	ms, topo, err := b.masters(ctx)
	if err != nil {
		return nil, "", err
	}
	if len(ms) == 0 {
		return nil, "", nil
	}
	idx, cur := 0, uint64(0)
	if cursor != "" {
		parts := strings.Split(cursor, "/")
		if len(parts) != 3 {
			return nil, "", fmt.Errorf("redis: invalid cluster scan cursor %q", cursor)
		}
		i, err1 := strconv.Atoi(parts[1])
		c, err2 := strconv.ParseUint(parts[2], 10, 64)
		if err1 != nil || err2 != nil || i < 0 {
			return nil, "", fmt.Errorf("redis: invalid cluster scan cursor %q", cursor)
		}
		if parts[0] == topo && i < len(ms) {
			idx, cur = i, c
		} // else: the masters changed; start again from the first
	}
	keys, next, err := ms[idx].ScanType(ctx, cur, match, int64(count), "string").Result()
	if err != nil {
		return nil, "", wrap(ctx, "SCAN", err)
	}
	if next == 0 {
		idx++
	}
	if idx == len(ms) {
		return keys, "", nil
	}
	return keys, topo + "/" + strconv.Itoa(idx) + "/" + strconv.FormatUint(next, 10), nil
}

// DeletePrefix implements backend.PrefixDeleter: every key under prefix,
// whatever its Redis type, is deleted page by page, each page's UNLINK sent in
// the same pipeline as the SCAN of the next page, so a page costs one round
// trip. On a cluster the masters are cleared concurrently, with one UNLINK per
// hash slot.
func (b *Backend) DeletePrefix(ctx context.Context, prefix string, count int) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if count <= 0 {
		count = 1000
	}
	match, filter, err := b.matchPattern(prefix)
	if err != nil {
		return err
	}
	keep := func(w string) bool { return !filter || strings.HasPrefix(b.backendKey(w), prefix) }
	if b.cluster == nil {
		c := b.client.(*goredis.Client)
		return b.clearNode(ctx, c, match, count, false, keep)
	}
	return b.cluster.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
		return b.clearNode(ctx, c, match, count, true, keep)
	})
}

// clearNode deletes the keys of one server that match the pattern.
func (b *Backend) clearNode(ctx context.Context, c *goredis.Client, match string, count int, bySlot bool, keep func(string) bool) error {
	var pending []string
	cur := uint64(0)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		pipe := c.Pipeline()
		var unlinks []*goredis.IntCmd
		if len(pending) > 0 {
			if bySlot {
				groups := map[int][]string{}
				for _, k := range pending {
					groups[Slot(k)] = append(groups[Slot(k)], k)
				}
				for _, ks := range groups {
					unlinks = append(unlinks, pipe.Unlink(ctx, ks...))
				}
			} else {
				unlinks = append(unlinks, pipe.Unlink(ctx, pending...))
			}
		}
		var scan *goredis.ScanCmd
		if cur != 0 || pending == nil {
			scan = pipe.Scan(ctx, cur, match, int64(count))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return wrap(ctx, "SCAN+UNLINK", err)
		}
		for _, u := range unlinks {
			if err := u.Err(); err != nil {
				return wrap(ctx, "UNLINK", err)
			}
		}
		if scan == nil {
			return nil // the last page was unlinked
		}
		keys, next, err := scan.Result()
		if err != nil {
			return wrap(ctx, "SCAN", err)
		}
		pending = pending[:0]
		if pending == nil {
			pending = []string{}
		}
		for _, k := range keys {
			if keep(k) {
				pending = append(pending, k)
			}
		}
		cur = next
		if cur == 0 && len(pending) == 0 {
			return nil
		}
	}
}
