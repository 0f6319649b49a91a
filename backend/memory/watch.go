package memory

import (
	"context"
	"strings"
	"sync"

	"github.com/kvmap/kv/backend"
)

// watches are the watches of a Backend (Capabilities.Watch).
type watches struct {
	mu   sync.Mutex // held while reporting: one report at a time
	next int
	m    map[int]watch
}

type watch struct {
	prefix string
	report func(backend.Change)
}

// watch is Capabilities.Watch: changes are reported by the call that made
// them, once it has released the Backend's lock, before it returns. Keys
// removed at their deadline are reported when the removal happens (a read
// or the sweep), not at the deadline.
func (b *Backend) watch(ctx context.Context, prefix string, report func(backend.Change)) (func(), error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	b.watching++
	b.mu.Unlock()
	ws := &b.watches
	ws.mu.Lock()
	if ws.m == nil {
		ws.m = map[int]watch{}
	}
	id := ws.next
	ws.next++
	ws.m[id] = watch{prefix: prefix, report: report}
	report(backend.Change{Kind: backend.ChangeLive})
	ws.mu.Unlock()
	stop := sync.OnceFunc(func() {
		ws.mu.Lock()
		delete(ws.m, id)
		ws.mu.Unlock()
		b.mu.Lock()
		b.watching--
		b.mu.Unlock()
	})
	context.AfterFunc(ctx, stop)
	return stop, nil
}

// changedKey records a change to key for the watches. b.mu must be held.
func (b *Backend) changedKey(key string) {
	if b.watching > 0 {
		b.changed = append(b.changed, key)
	}
}

// unlock releases b.mu and reports the changes made under it.
func (b *Backend) unlock() {
	changed := b.changed
	b.changed = nil
	b.mu.Unlock()
	if len(changed) == 0 {
		return
	}
	ws := &b.watches
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.m {
		var keys []string
		for _, k := range changed {
			if strings.HasPrefix(k, w.prefix) {
				keys = append(keys, k)
			}
		}
		if len(keys) > 0 {
			w.report(backend.Change{Kind: backend.ChangeKeys, Keys: keys})
		}
	}
}
