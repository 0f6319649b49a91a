package kv

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// localObs is the registration of the callback that observes a Map's local
// tier. It is unregistered once: by Close, or by the garbage collector for a
// Map dropped without Close.
type localObs struct {
	once   sync.Once
	reg    metric.Registration
	err    error
	ns     string
	logger *slog.Logger
}

// stop unregisters the callback, once, and returns the error of doing so.
func (l *localObs) stop() error {
	l.once.Do(func() { l.err = l.reg.Unregister() })
	return l.err
}

// observeLocal registers the callback that reports the Map's local tier at
// each collection of its meter provider: kv.local.entries and
// kv.local.bytes, and where the Map watches its namespace
// kv.local.invalidations and kv.local.losses, with the attributes every
// call's metrics carry (db.system.name, kv.namespace, server.address and
// server.port). The values are the tier's own counters (NearCacheStats),
// which it keeps anyway: no call pays for them. A Map without telemetry, or
// whose tier holds nothing and watches nothing, registers no callback.
func (m *Map[V]) observeLocal(o options) error {
	t := m.tel
	watched := m.watch != nil
	if t == nil || !(m.tier.Keeps() || o.missTTL > 0 || watched) {
		return nil
	}
	var (
		errs                  [4]error
		entries, bytes        metric.Int64ObservableUpDownCounter
		invalidations, losses metric.Int64ObservableCounter
	)
	entries, errs[0] = t.meter.Int64ObservableUpDownCounter(MetricLocalEntries,
		metric.WithDescription("Entries of the kv.Map's local tier: near-cached values, and what stale serving, refresh-ahead and WithMissTTL remember."),
		metric.WithUnit("{entry}"))
	bytes, errs[1] = t.meter.Int64ObservableUpDownCounter(MetricLocalBytes,
		metric.WithDescription("Bytes of the keys and values the kv.Map's local tier holds."),
		metric.WithUnit("By"))
	invalidations, errs[2] = t.meter.Int64ObservableCounter(MetricLocalInvalidations,
		metric.WithDescription("Near-cached keys that a change report of the store removed."),
		metric.WithUnit("{key}"))
	losses, errs[3] = t.meter.Int64ObservableCounter(MetricLocalLosses,
		metric.WithDescription("Losses of the store's change reports while they were live; each emptied the local tier."),
		metric.WithUnit("{loss}"))
	for i, name := range []string{MetricLocalEntries, MetricLocalBytes, MetricLocalInvalidations, MetricLocalLosses} {
		if errs[i] != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidOption, name, errs[i])
		}
	}
	insts := []metric.Observable{entries, bytes}
	if watched {
		insts = append(insts, invalidations, losses)
	}
	opt := metric.WithAttributeSet(attribute.NewSet(t.base...))
	tr := m.tier // not m: the registration must not keep the Map alive
	reg, err := t.meter.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		s := tr.Stats()
		obs.ObserveInt64(entries, int64(s.Entries), opt)
		obs.ObserveInt64(bytes, s.Bytes, opt)
		if watched {
			obs.ObserveInt64(invalidations, s.Invalidations, opt)
			obs.ObserveInt64(losses, s.Losses, opt)
		}
		return nil
	}, insts...)
	if err != nil {
		if reg != nil {
			if uerr := reg.Unregister(); uerr != nil {
				err = fmt.Errorf("%w (and unregistering: %w)", err, uerr)
			}
		}
		return fmt.Errorf("%w: observing the local tier: %w", ErrInvalidOption, err)
	}
	t.local = &localObs{reg: reg, ns: m.ns, logger: m.logger}
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
