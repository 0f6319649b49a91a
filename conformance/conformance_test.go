package conformance_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/clock"
	"github.com/kvmap/kv/conformance"
)

// harness runs the suite over the memory backend seen through wrap, the
// fault cases with the faults injected below wrap.
func harness(wrap func(backend.Backend) backend.Backend) conformance.Harness {
	store := func() (backend.Backend, func(time.Duration)) {
		clk := clock.NewManual(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		return memory.New(memory.WithClock(clk), memory.WithSweepInterval(0)), clk.Advance
	}
	return conformance.Harness{
		New: func(t conformance.T) conformance.Store {
			b, advance := store()
			return conformance.Store{Backend: wrap(b), Advance: advance}
		},
		Faults: func(t conformance.T) (conformance.Store, conformance.Faults) {
			b, advance := store()
			fb, f := conformance.WithFaults(b)
			return conformance.Store{Backend: wrap(fb), Advance: advance}, f
		},
		PageHint: true,
	}
}

// TestSuiteCases checks that the suite is as large as promised and that every
// case states its rule.
func TestSuiteCases(t *testing.T) {
	cs := conformance.Cases()
	if len(cs) < 40 {
		t.Errorf("the suite has %d cases; want at least 40", len(cs))
	}
	names := map[string]bool{}
	for _, c := range cs {
		if c.Rule == "" {
			t.Errorf("case %s states no rule", c.Name)
		}
		if names[c.Name] {
			t.Errorf("case name %s used twice", c.Name)
		}
		names[c.Name] = true
	}
}

// TestSmallPagesWithDuplicates runs the whole suite over a wrapper that
// serves pages of three keys, repeats every page, and puts empty pages in
// between, as a Redis SCAN may: iteration must de-duplicate and page
// correctly, and the fallbacks for stores without the optional interfaces
// (DeletePrefix, CountPrefix) are exercised.
func TestSmallPagesWithDuplicates(t *testing.T) {
	conformance.Run(t, harness(func(b backend.Backend) backend.Backend { return &smallPages{b} }))
}

// TestTestPasses checks that Test, the suite without *testing.T, passes a
// correct backend.
func TestTestPasses(t *testing.T) {
	if err := conformance.Test(harness(func(b backend.Backend) backend.Backend { return b })); err != nil {
		t.Errorf("Test(memory) = %v; want nil", err)
	}
}

// TestBrokenBackendsFail proves the suite can fail: each deliberately broken
// backend must fail, and in the case that checks the rule it breaks.
func TestBrokenBackendsFail(t *testing.T) {
	tests := []struct {
		name     string
		wrap     func(backend.Backend) backend.Backend
		wantCase string
	}{
		{"IgnoresPageHint", func(b backend.Backend) backend.Backend { return &onePage{b} }, "ScanPageHint"},
		{"FalseUniquePromise", func(b backend.Backend) backend.Backend { return &falseUnique{b} }, "ScanUniquePromise"},
		{"KeysOutsidePrefix", func(b backend.Backend) backend.Backend { return &leaky{b} }, "ScanComplete"},
		{"IgnoresTTL", func(b backend.Backend) backend.Backend { return &noTTL{b} }, "Expiry"},
		{"DropsLastPage", func(b backend.Backend) backend.Backend { return &dropLast{b} }, "ManyPages"},
		{"SwallowsWriteErrors", func(b backend.Backend) backend.Backend { return &swallow{b} }, "FaultWriteFails"},
		{"AcknowledgesLostWrites", func(b backend.Backend) backend.Backend { return &swallow{b} }, "FaultAcknowledgedWritesPersist"},
		{"EndsScanOnError", func(b backend.Backend) backend.Backend { return &scanEndsOnError{b} }, "FaultIterationNeverLooksComplete"},
		{"HidesDeadline", func(b backend.Backend) backend.Backend { return &hidesDeadline{b} }, "FaultDeadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := conformance.Test(harness(tt.wrap))
			if err == nil {
				t.Fatalf("Test passed a backend that %s; want failures", tt.name)
			}
			var failed []string
			for _, f := range conformance.Failures(err) {
				failed = append(failed, f.Case)
			}
			if !slices.Contains(failed, tt.wantCase) {
				t.Errorf("failed cases = %v; want them to include %s", failed, tt.wantCase)
			}
		})
	}
}

// smallPages serves every scan in pages of three keys; each page is served
// twice, and an empty page with a cursor comes between pages.
type smallPages struct{ backend.Backend }

// Describe withdraws the memory backend's promise of unique scans.
func (s *smallPages) Describe() backend.Description {
	d := s.Backend.Describe()
	d.UniqueScan = false
	return d
}

func (s *smallPages) Scan(ctx context.Context, prefix, cursor string, _ int) (backend.Page, error) {
	switch {
	case strings.HasPrefix(cursor, "empty/"):
		return backend.Page{Cursor: "first/" + strings.TrimPrefix(cursor, "empty/")}, nil
	case strings.HasPrefix(cursor, "first/"), strings.HasPrefix(cursor, "again/"):
		inner := cursor[len("first/"):]
		page, err := s.Backend.Scan(ctx, prefix, inner, 3)
		if err != nil {
			return backend.Page{}, err
		}
		if strings.HasPrefix(cursor, "first/") {
			page.Cursor = "again/" + inner
		} else if page.Cursor != "" {
			page.Cursor = "empty/" + page.Cursor
		}
		return page, nil
	case cursor == "":
		return s.Scan(ctx, prefix, "first/", 3)
	}
	return backend.Page{}, nil
}

// onePage claims (through the harness) to honour the page hint but returns
// every key in one page.
type onePage struct{ backend.Backend }

func (o *onePage) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	var all []string
	for {
		page, err := o.Backend.Scan(ctx, prefix, cursor, count)
		if err != nil {
			return backend.Page{}, err
		}
		all = append(all, page.Keys...)
		if page.Cursor == "" {
			return backend.Page{Keys: all}, nil
		}
		cursor = page.Cursor
	}
}

// falseUnique promises scans without duplicates but repeats the first key of
// every page.
type falseUnique struct{ backend.Backend }

func (f *falseUnique) Describe() backend.Description {
	d := f.Backend.Describe()
	d.UniqueScan = true
	return d
}

func (f *falseUnique) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	page, err := f.Backend.Scan(ctx, prefix, cursor, count)
	if len(page.Keys) > 0 {
		page.Keys = append(page.Keys, page.Keys[0])
	}
	return page, err
}

// leaky scans one byte less of the prefix than asked, returning the keys of
// neighbours that share it.
type leaky struct{ backend.Backend }

func (l *leaky) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	if prefix != "" {
		prefix = prefix[:len(prefix)-1]
	}
	return l.Backend.Scan(ctx, prefix, cursor, count)
}

// noTTL stores every entry without expiry.
type noTTL struct{ backend.Backend }

func (n *noTTL) MSet(ctx context.Context, entries []backend.Entry) error {
	out := slices.Clone(entries)
	for i := range out {
		if out[i].TTL > 0 {
			out[i].TTL = backend.NoTTL
		}
	}
	return n.Backend.MSet(ctx, out)
}

// dropLast loses the last page of any scan that takes more than one.
type dropLast struct{ backend.Backend }

func (d *dropLast) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	page, err := d.Backend.Scan(ctx, prefix, cursor, count)
	if err == nil && cursor != "" && page.Cursor == "" {
		page.Keys = nil
	}
	return page, err
}

// swallow reports every write as done, as the Redis backend did when it
// ignored a pipeline's own error.
type swallow struct{ backend.Backend }

func (s *swallow) MSet(ctx context.Context, entries []backend.Entry) error {
	_ = s.Backend.MSet(ctx, entries) // the defect under test
	return nil
}

func (s *swallow) Delete(ctx context.Context, keys []string) error {
	_ = s.Backend.Delete(ctx, keys) // the defect under test
	return nil
}

// scanEndsOnError ends a scan, as if complete, when a page fails.
type scanEndsOnError struct{ backend.Backend }

func (s *scanEndsOnError) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	p, err := s.Backend.Scan(ctx, prefix, cursor, count)
	if err != nil {
		return backend.Page{}, nil // the defect under test
	}
	return p, nil
}

// hidesDeadline reports a context deadline as an error of its own, as
// go-redis reports one on a pipelined call.
type hidesDeadline struct{ backend.Backend }

func (h *hidesDeadline) hide(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("i/o timeout") // the defect under test
	}
	return err
}

func (h *hidesDeadline) MGet(ctx context.Context, keys []string, withTTL bool) ([]backend.Value, error) {
	v, err := h.Backend.MGet(ctx, keys, withTTL)
	return v, h.hide(err)
}

func (h *hidesDeadline) MSet(ctx context.Context, entries []backend.Entry) error {
	return h.hide(h.Backend.MSet(ctx, entries))
}
