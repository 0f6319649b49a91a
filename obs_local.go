package kv

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"weak"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/kvmap/kv/backend"
)

// localObs is what observes a Map's local tier: the registration of the
// callback that reports its entries and bytes, unregistered once (by Close,
// or by the garbage collector for a Map dropped without Close), and the
// counters of its invalidations and losses, which change reports add to.
type localObs struct {
	once   sync.Once
	reg    metric.Registration
	err    error
	ns     string
	logger *slog.Logger

	invalidations, losses metric.Int64Counter // nil where the Map does not watch
	opt                   metric.AddOption
}

// stop unregisters the callback, once, and returns the error of doing so.
func (l *localObs) stop() error {
	l.once.Do(func() { l.err = l.reg.Unregister() })
	return l.err
}

// counted returns report with what each report does to the tier counted:
// kv.local.invalidations and kv.local.losses, synchronous counters so that
// they never go down (the Maps of a namespace add up, and one that closes
// takes nothing back). ctx is the watch's, for the counters' Add.
func (l *localObs) counted(ctx context.Context, apply func(backend.Change) (int64, bool)) func(backend.Change) {
	return func(ch backend.Change) {
		n, lost := apply(ch)
		if n > 0 {
			l.invalidations.Add(ctx, n, l.opt)
		}
		if lost {
			l.losses.Add(ctx, 1, l.opt)
		}
	}
}

// observeLocal registers the callback that reports the Map's local tier at
// each collection of its meter provider, kv.local.entries and
// kv.local.bytes, and where the Map watches its namespace makes the
// counters kv.local.invalidations and kv.local.losses, with the attributes
// every call's metrics carry (db.system.name, kv.namespace, server.address
// and server.port). Entries and bytes are the tier's own counters
// (NearCacheStats), which it keeps anyway: no call pays for them; the
// callback holds the tier weakly, so that a Map dropped without Close is
// collected. A Map without telemetry, or whose tier holds nothing and
// watches nothing, registers nothing.
func (m *Map[V]) observeLocal(o options) error {
	t := m.tel
	watched := m.watch != nil
	if t == nil || !(m.tier.Keeps() || o.missTTL > 0 || watched) {
		return nil
	}
	var (
		errs           [4]error
		entries, bytes metric.Int64ObservableUpDownCounter
		local          = &localObs{ns: m.ns, logger: m.logger}
	)
	entries, errs[0] = t.meter.Int64ObservableUpDownCounter(MetricLocalEntries,
		metric.WithDescription("Entries of the kv.Map's local tier: near-cached values, and what stale serving, refresh-ahead and WithMissTTL remember."),
		metric.WithUnit("{entry}"))
	bytes, errs[1] = t.meter.Int64ObservableUpDownCounter(MetricLocalBytes,
		metric.WithDescription("Bytes of the keys and values the kv.Map's local tier holds."),
		metric.WithUnit("By"))
	if watched {
		local.invalidations, errs[2] = t.meter.Int64Counter(MetricLocalInvalidations,
			metric.WithDescription("Near-cached keys that a change report of the store removed."),
			metric.WithUnit("{key}"))
		local.losses, errs[3] = t.meter.Int64Counter(MetricLocalLosses,
			metric.WithDescription("Losses of the store's change reports while they were live; each emptied the local tier."),
			metric.WithUnit("{loss}"))
	}
	for i, name := range []string{MetricLocalEntries, MetricLocalBytes, MetricLocalInvalidations, MetricLocalLosses} {
		if errs[i] != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidOption, name, errs[i])
		}
	}
	set := attribute.NewSet(t.base...)
	local.opt = metric.WithAttributeSet(set)
	opt := metric.WithAttributeSet(set)
	// Weakly: the registration must keep neither the tier nor the Map (which
	// the tier's verifier refers to) alive.
	wt := weak.Make(m.tier)
	reg, err := t.meter.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		tr := wt.Value()
		if tr == nil {
			return nil
		}
		s := tr.Stats()
		obs.ObserveInt64(entries, int64(s.Entries), opt)
		obs.ObserveInt64(bytes, s.Bytes, opt)
		return nil
	}, entries, bytes)
	if err != nil {
		if reg != nil {
			if uerr := reg.Unregister(); uerr != nil {
				err = fmt.Errorf("%w (and unregistering: %w)", err, uerr)
			}
		}
		return fmt.Errorf("%w: observing the local tier: %w", ErrInvalidOption, err)
	}
	local.reg = reg
	t.local = local
	// A Map dropped without Close stops being observed once collected.
	runtime.AddCleanup(m, func(l *localObs) {
		if err := l.stop(); err != nil && l.logger != nil {
			l.logger.Warn("kv: unregistering the local tier's metrics failed", "namespace", l.ns, "error", err.Error())
		}
	}, t.local)
	return nil
}

// unobserveLocal unregisters the callback of observeLocal (Close): the
// Map's local tier is reported no more.
func (m *Map[V]) unobserveLocal() error {
	if m.tel == nil || m.tel.local == nil {
		return nil
	}
	if err := m.tel.local.stop(); err != nil {
		return fmt.Errorf("kv: Close %s: unregistering the local tier's metrics: %w", m.ns, err)
	}
	return nil
}
