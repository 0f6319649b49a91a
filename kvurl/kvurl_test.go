package kvurl_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/backend/memory"
	"github.com/kvmap/kv/backend/redis"
	"github.com/kvmap/kv/kvurl"
)

func TestOpen(t *testing.T) {
	s := miniredis.RunT(t)
	dir := t.TempDir()
	tests := []struct {
		url     string
		check   func(backend.Backend) bool
		hashTag bool
	}{
		{"mem://", func(b backend.Backend) bool { _, ok := b.(*memory.Backend); return ok }, false},
		{"bolt://" + filepath.Join(dir, "a.db"), func(b backend.Backend) bool { _, ok := b.(*bolt.Backend); return ok }, false},
		{"redis://" + s.Addr() + "/0", func(b backend.Backend) bool { _, ok := b.(*redis.Backend); return ok }, false},
		{"redis://" + s.Addr() + "?hashtag=1", func(b backend.Backend) bool { _, ok := b.(*redis.Backend); return ok }, true},
		{"redis+cluster://" + s.Addr() + "?addr=" + s.Addr(), func(b backend.Backend) bool { _, ok := b.(*redis.Backend); return ok }, false},
		{"redis+sentinel://" + s.Addr() + "?master=mymaster", func(b backend.Backend) bool { _, ok := b.(*redis.Backend); return ok }, false},
	}
	for _, tt := range tests {
		b, err := kvurl.Open(tt.url, nil)
		if err != nil {
			t.Errorf("Open(%q): %v", tt.url, err)
			continue
		}
		if !tt.check(b) {
			t.Errorf("Open(%q) = %T", tt.url, b)
		}
		if rb, ok := b.(*redis.Backend); ok && rb.HashTag() != tt.hashTag {
			t.Errorf("Open(%q): hash-tag mode %v; want %v", tt.url, rb.HashTag(), tt.hashTag)
		}
		if err := b.Close(); err != nil {
			t.Errorf("Close(%q): %v", tt.url, err)
		}
	}
}

func TestBoltPathIsLiteral(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	b, err := kvurl.Open("bolt://./rel.db", nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := filepath.Glob(filepath.Join(dir, "rel.db")); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "rel.db")); len(m) != 1 {
		t.Errorf("bolt://./rel.db did not create ./rel.db")
	}
}

func TestOpenErrors(t *testing.T) {
	for _, u := range []string{"", "nope", "ftp://x", "mem://x", "bolt://", "redis+sentinel://127.0.0.1:1", "redis://127.0.0.1:1?hashtag=maybe"} {
		if _, err := kvurl.Open(u, nil); !errors.Is(err, kvurl.ErrInvalidURL) {
			t.Errorf("Open(%q) = %v; want ErrInvalidURL", u, err)
		}
	}
	_, err := kvurl.Open("redis://user:s3cret@[bad", nil)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Open of a bad URL with a password = %v; want an error without the password", err)
	}
}

func TestRedact(t *testing.T) {
	tests := map[string]string{
		"redis://user:s3cret@host:6379/0":  "redis://user:xxxxx@host:6379/0",
		"rediss://:s3cret@host:6379":       "rediss://:xxxxx@host:6379",
		"redis://host:6379":                "redis://host:6379",
		"mem://":                           "mem://",
		"bolt://./kv.db":                   "bolt://./kv.db",
		"redis+cluster://u:p@h:1?addr=h:2": "redis+cluster://u:xxxxx@h:1?addr=h:2",
		"redis://user:s3cret@[bad":         "redis://user:xxxxx@[bad",
	}
	for in, want := range tests {
		if got := kvurl.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestBoltReadOnlyURL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	if _, err := kvurl.Open("bolt://"+path+"?ro=1", nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(?ro=1) of a missing file = %v; want fs.ErrNotExist", err)
	}
	w, err := kvurl.Open("bolt://"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := kvurl.Open("bolt://"+path+"?ro=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if bb, ok := r.(*bolt.Backend); !ok || !bb.ReadOnly() {
		t.Errorf("Open(?ro=1) = %T, read-only %v; want a read-only *bolt.Backend", r, ok && bb.ReadOnly())
	}
	if _, err := kvurl.Open("bolt://"+path+"?rw=1", nil); !errors.Is(err, kvurl.ErrInvalidURL) {
		t.Errorf("Open(?rw=1) = %v; want ErrInvalidURL", err)
	}
}

// TestRegister: a third-party backend registered under its own scheme opens
// through Open; duplicate and nil registrations panic at start-up, as
// database/sql's do.
func TestRegister(t *testing.T) {
	var got string
	kvurl.Register("test+mine", func(rawURL string, opts *kvurl.Options) (backend.Backend, error) {
		got = rawURL
		if opts == nil {
			t.Error("the Opener was given nil Options")
		}
		return memory.New(), nil
	})
	b, err := kvurl.Open("test+mine://anything", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got != "test+mine://anything" {
		t.Errorf("the Opener got %q", got)
	}
	if !slices.Contains(kvurl.Schemes(), "test+mine") || !slices.Contains(kvurl.Schemes(), "redis") {
		t.Errorf("Schemes = %v; want the built-in ones and test+mine", kvurl.Schemes())
	}
	for name, f := range map[string]func(){
		"duplicate": func() {
			kvurl.Register("redis", func(string, *kvurl.Options) (backend.Backend, error) { return nil, nil })
		},
		"nil": func() { kvurl.Register("test+nil", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register %s did not panic", name)
				}
			}()
			f()
		}()
	}
	if _, err := kvurl.Open("nope://x", nil); !errors.Is(err, kvurl.ErrInvalidURL) || !strings.Contains(err.Error(), "test+mine://") {
		t.Errorf("Open of an unknown scheme = %v; want ErrInvalidURL listing the schemes", err)
	}
}
