package backend_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// script is a Backend whose Scan serves fixed pages, and whose MGet finds
// every key but "gone".
type script struct {
	backend.Backend // nil: only Scan and MGet are called
	pages           []backend.Page
	fail            int // the page whose Scan fails, 0 for none
	scans           int
}

func (s *script) Scan(_ context.Context, _, cursor string, _ int) (backend.Page, error) {
	i := 0
	if cursor != "" {
		i, _ = strconv.Atoi(cursor)
	}
	s.scans++
	if s.fail != 0 && i == s.fail {
		return backend.Page{}, errors.New("scan failed")
	}
	p := s.pages[i]
	p.Keys = slices.Clone(p.Keys)
	if i+1 < len(s.pages) {
		p.Cursor = strconv.Itoa(i + 1)
	}
	return p, nil
}

func (s *script) MGet(_ context.Context, keys []string, _ bool) ([]backend.Value, error) {
	out := make([]backend.Value, len(keys))
	for i, k := range keys {
		if k != "p:gone" {
			out[i] = backend.Value{Bytes: []byte("v" + k), Found: true}
		}
	}
	return out, nil
}

func (s *script) Describe() backend.Description { return backend.Description{} }
func (s *script) Close() error                  { return nil }

func TestPages(t *testing.T) {
	pages := []backend.Page{
		{Keys: []string{"p:a", "p:b", "other:x"}},
		{},                                    // an empty page before the end
		{Keys: []string{"p:b", "p:c", "p:a"}}, // repeats, as SCAN may
		{Keys: []string{"p:gone", "p:d"}},
	}
	var got [][]string
	for p, err := range backend.Pages(context.Background(), &script{pages: pages}, "p:", 10) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Keys)
	}
	want := [][]string{{"p:a", "p:b"}, {"p:c"}, {"p:gone", "p:d"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("Pages = %q; want %q (in prefix, each once, no empty page)", got, want)
	}

	var keys, vals []string
	for p, err := range backend.EntryPages(context.Background(), &script{pages: pages}, "p:", 10) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, p.Keys...)
		for _, v := range p.Values {
			vals = append(vals, string(v))
		}
	}
	if !slices.Equal(keys, []string{"p:a", "p:b", "p:c", "p:d"}) || !slices.Equal(vals, []string{"vp:a", "vp:b", "vp:c", "vp:d"}) {
		t.Errorf("EntryPages = %q, %q; want the keys in prefix with their values, vanished ones left out", keys, vals)
	}
}

func TestPagesErrorAndBreak(t *testing.T) {
	pages := []backend.Page{{Keys: []string{"p:a"}}, {Keys: []string{"p:b"}}, {Keys: []string{"p:c"}}}
	s := &script{pages: pages, fail: 1}
	var errs []error
	n := 0
	for _, err := range backend.Pages(context.Background(), s, "p:", 10) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if n != 1 || len(errs) != 1 {
		t.Errorf("a failing scan yielded %d pages and %d errors; want 1 and 1 (the error once, then the end)", n, len(errs))
	}

	s = &script{pages: pages}
	for range backend.Pages(context.Background(), s, "p:", 10) {
		break
	}
	if s.scans != 1 {
		t.Errorf("breaking after the first page made %d scans; want 1", s.scans)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, err := range backend.Pages(ctx, &script{pages: pages}, "p:", 10) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Pages with an ended context yielded %v; want context.Canceled", err)
		}
	}
}
