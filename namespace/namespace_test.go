package namespace_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/namespace"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		ns   string
		want error
	}{
		{"signal_cache", nil},
		{"a*", nil},
		{"a[1]", nil},
		{`a\`, nil},
		{"ключ", nil},
		{"", backend.ErrInvalidNamespace},
		{"a:b", backend.ErrInvalidNamespace},
		{":", backend.ErrInvalidNamespace},
	}
	for _, tt := range tests {
		if err := namespace.Validate(tt.ns); !errors.Is(err, tt.want) {
			t.Errorf("Validate(%q) = %v; want %v", tt.ns, err, tt.want)
		}
	}
}

func TestStoredKeyFormat(t *testing.T) {
	ctx := context.Background()
	mem := memory.New()
	defer mem.Close()
	nb, err := namespace.New(mem, "signal_cache")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := nb.Key("binance:s:BTC/USDT:USDT"), "signal_cache:binance:s:BTC/USDT:USDT"; got != want {
		t.Errorf("Key = %q; want %q", got, want)
	}
	if err := nb.MSet(ctx, []backend.Entry{{Key: "a:b", Value: []byte("v"), TTL: backend.NoTTL}}); err != nil {
		t.Fatal(err)
	}
	page, err := mem.Scan(ctx, "", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"signal_cache:a:b"}; !slices.Equal(page.Keys, want) {
		t.Errorf("stored keys = %q; want %q", page.Keys, want)
	}
	page, err = nb.Scan(ctx, "", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a:b"}; !slices.Equal(page.Keys, want) {
		t.Errorf("namespace keys = %q; want %q", page.Keys, want)
	}
	if nb.Unwrap() != backend.Backend(mem) || nb.Namespace() != "signal_cache" {
		t.Errorf("Unwrap/Namespace do not report the wrapped store and namespace")
	}
}

// leaky returns a key outside any prefix asked for.
type leaky struct{ backend.Backend }

func (l leaky) Scan(ctx context.Context, prefix, cursor string, count int) (backend.Page, error) {
	return backend.Page{Keys: []string{prefix + "mine", "other:key", prefix[:len(prefix)-1] + "x"}}, nil
}

func (leaky) Describe() backend.Description { return backend.Description{} }

func TestScanDropsKeysOutsideNamespace(t *testing.T) {
	nb, err := namespace.New(leaky{}, "ns")
	if err != nil {
		t.Fatal(err)
	}
	page, err := nb.Scan(context.Background(), "", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"mine"}; !slices.Equal(page.Keys, want) {
		t.Errorf("Scan = %q; want %q", page.Keys, want)
	}
}

func (panicking) Describe() backend.Description { return backend.Description{} }

func TestEmptyKeyRefusedBeforeTheStore(t *testing.T) {
	ctx := context.Background()
	nb, err := namespace.New(panicking{}, "ns")
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]error{}
	checks["MSet"] = nb.MSet(ctx, []backend.Entry{{Key: "a", TTL: backend.NoTTL}, {Key: "", TTL: backend.NoTTL}})
	_, checks["MGet"] = nb.MGet(ctx, []string{"a", ""}, false)
	checks["Delete"] = nb.Delete(ctx, []string{""})
	_, checks["Expire"] = nb.Expire(ctx, "", backend.NoTTL)
	_, _, checks["TTL"] = nb.TTL(ctx, "")
	for op, err := range checks {
		if !errors.Is(err, backend.ErrEmptyKey) {
			t.Errorf("%s = %v; want ErrEmptyKey", op, err)
		}
	}
}

// panicking is a store no call may reach.
type panicking struct{ backend.Backend }

// viewStore is a store with native namespace views, recording what it gets.
type viewStore struct {
	backend.Backend
	views map[string]backend.Backend
	err   error
}

func (v *viewStore) Capabilities() backend.Capabilities {
	return backend.Capabilities{Namespace: func(ns string) (backend.Backend, error) {
		if v.err != nil {
			return nil, v.err
		}
		return v.views[ns], nil
	}}
}

func TestUsesStoreViews(t *testing.T) {
	ctx := context.Background()
	view := memory.New()
	defer view.Close()
	flat := memory.New()
	defer flat.Close()
	nb, err := namespace.New(&viewStore{Backend: flat, views: map[string]backend.Backend{"ns": view}}, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if err := nb.MSet(ctx, []backend.Entry{{Key: "k", Value: []byte("v"), TTL: backend.NoTTL}}); err != nil {
		t.Fatal(err)
	}
	if v, _ := view.Get(ctx, "k"); !v.Found {
		t.Errorf("the write did not reach the store's view under its own key")
	}
	if nb.Key("k") != "ns:k" {
		t.Errorf("Key = %q; want ns:k", nb.Key("k"))
	}

	// A store without views gets prefixed keys.
	nb, err = namespace.New(flat, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if err := nb.MSet(ctx, []backend.Entry{{Key: "k", Value: []byte("v"), TTL: backend.NoTTL}}); err != nil {
		t.Fatal(err)
	}
	if v, _ := flat.Get(ctx, "ns:k"); !v.Found {
		t.Errorf("without views the key was not stored as ns:k")
	}
	// Any other error from the store is New's error.
	boom := errors.New("boom")
	if _, err := namespace.New(&viewStore{Backend: flat, err: boom}, "ns"); !errors.Is(err, boom) {
		t.Errorf("New over a failing Namespace = %v; want its error", err)
	}
}
