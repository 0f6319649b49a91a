package conformance

import "github.com/kvmap/kv/backend"

// CoreOnly returns b with its optimisations hidden: a Backend with the core
// methods only, not an Optimizer, so that every helper of package backend
// and every Map call takes its fallback.
func CoreOnly(b backend.Backend) backend.Backend { return coreOnly{b} }

// coreOnly embeds the interface, which exposes its methods and nothing else.
type coreOnly struct{ backend.Backend }

// WithoutOptimizations returns h with the Backend of every Store it makes
// seen through CoreOnly. Every optimisation is a pure one, so the suite must
// give the same results on it as on h: run both.
//
//	conformance.Run(t, h)
//	conformance.Run(t, conformance.WithoutOptimizations(h))
func WithoutOptimizations(h Harness) Harness {
	newStore := h.New
	h.New = func(t T) Store {
		s := newStore(t)
		s.Backend = CoreOnly(s.Backend)
		return s
	}
	if faults := h.Faults; faults != nil {
		h.Faults = func(t T) (Store, Faults) {
			s, f := faults(t)
			s.Backend = CoreOnly(s.Backend)
			return s, f
		}
	}
	return h
}
