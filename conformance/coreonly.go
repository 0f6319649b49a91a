package conformance

import "github.com/kvmap/kv/backend"

// CoreOnly returns b with its optimisations hidden: a Backend with the core
// methods, not an Optimizer, so that every helper of package backend and
// every Map call takes its fallback. It keeps b's capabilities, its
// namespace views seen through CoreOnly too, but its leases: the fallback
// of DeletePrefix deletes the keys it finds, so a Clear could not end the
// lease of an absent key, as the lease contract requires (a store that
// keeps leases has its own DeletePrefix, and a decorator that forwards
// leases must forward it).
func CoreOnly(b backend.Backend) backend.Backend { return coreOnly{backend.Wrapper{Backend: b}} }

// coreOnly is a Wrapper, which forwards no optimisation.
type coreOnly struct{ backend.Wrapper }

// Capabilities implements backend.Capable: b's but leases, views core only.
func (c coreOnly) Capabilities() backend.Capabilities {
	caps := c.Wrapper.Capabilities()
	caps.AcquireLeases = nil
	if ns := caps.Namespace; ns != nil {
		caps.Namespace = func(name string) (backend.Backend, error) {
			v, err := ns(name)
			if err != nil {
				return nil, err
			}
			return CoreOnly(v), nil
		}
	}
	return caps
}

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
