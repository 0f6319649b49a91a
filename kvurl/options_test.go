package kvurl_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/kvurl"
)

// TestParameterMisuse: a parameter given twice, one that a scheme ignores,
// and two that set one thing are refused with ErrInvalidURL naming them,
// before anything is opened or dialled.
func TestParameterMisuse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	for _, tc := range []struct {
		url   string
		names []string
	}{
		{"bolt://" + path + "?ro=1&ro=0", []string{"ro given 2 times"}},
		{"redis://127.0.0.1:1?hashtag=0&hashtag=1", []string{"hashtag given 2 times"}},
		{"redis://127.0.0.1:1?dial_timeout=1s&dial_timeout=2s", []string{"dial_timeout given 2 times"}},
		{"redis+sentinel://127.0.0.1:1?master=a&master=b", []string{"master given 2 times"}},
		{"redis://127.0.0.1:1/3?db=1", []string{`database "3"`, "db=1"}},
		{"redis://127.0.0.1:1?idle_timeout=1s&conn_max_idle_time=2s", []string{"idle_timeout"}},
		{"redis://127.0.0.1:1?max_conn_age=1s&conn_max_lifetime=2s", []string{"max_conn_age"}},
		{"redis+cluster://127.0.0.1:1?addr=127.0.0.1:2&db=3", []string{`unknown parameter "db"`, "redis+cluster"}},
		{"redis+cluster://127.0.0.1:1/3", []string{`path "/3"`, "one database"}},
		{"redis+sentinel://127.0.0.1:1?master=m&dial_timeout=3s", []string{`unknown parameter "dial_timeout"`, "redis+sentinel"}},
	} {
		b, err := kvurl.Open(tc.url, &kvurl.Options{Bolt: []bolt.Option{bolt.WithLockTimeout(50 * time.Millisecond)}})
		if err == nil {
			_ = b.Close()
		}
		if !errors.Is(err, kvurl.ErrInvalidURL) {
			t.Errorf("Open(%q) = %v; want ErrInvalidURL", tc.url, err)
			continue
		}
		for _, n := range tc.names {
			if !strings.Contains(err.Error(), n) {
				t.Errorf("Open(%q) = %q; want a message naming %s", tc.url, err, n)
			}
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat after refused Opens = %v; want no file", err)
	}
}

// TestParametersAllowed: what a scheme takes is still taken.
func TestParametersAllowed(t *testing.T) {
	for _, u := range []string{
		"redis+cluster://127.0.0.1:1/?addr=127.0.0.1:2&addr=127.0.0.1:3&hashtag=1",
		"redis+sentinel://127.0.0.1:1/2?master=m&addr=127.0.0.1:2",
		"redis://127.0.0.1:1/2?dial_timeout=1s&idle_timeout=1s",
	} {
		b, err := kvurl.Open(u, nil)
		if err != nil {
			t.Errorf("Open(%q) = %v; want a backend", u, err)
			continue
		}
		if err := b.Close(); err != nil {
			t.Errorf("Close of %q = %v", u, err)
		}
	}
}
