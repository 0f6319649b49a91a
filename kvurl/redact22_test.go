package kvurl_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/kvmap/kv/kvurl"
)

// TestRedactKeepsPaths (issue 22, item 9): only the password of a URL is
// hidden. A bbolt path holding "@" came out as bolt://xxxxx@2021/...; user
// names and hosts stay readable too.
func TestRedactKeepsPaths(t *testing.T) {
	tests := []struct{ in, want string }{
		{"bolt://runs@2021/kv.db", "bolt://runs@2021/kv.db"},
		{"bolt:///data/backtests/btc@2021-01/kv.db", "bolt:///data/backtests/btc@2021-01/kv.db"},
		{"bolt://./a@b@c.db?ro=1", "bolt://./a@b@c.db?ro=1"},
		{"bolt://t@x/../w.db", "bolt://t@x/../w.db"},
		{"redis://:secret@host/0", "redis://:xxxxx@host/0"},
		{"redis://user:secret@host:6379/0", "redis://user:xxxxx@host:6379/0"},
		{"redis://user:pa/ss@word@host:1", "redis://user:xxxxx@host:1"},
		{"redis://host:6379/0?password=secret&db=1", "redis://host:6379/0?password=xxxxx&db=1"},
		{"user:secret@host", "user:xxxxx@host"},
		{"redis://default@host", "redis://default@host"}, // a user name alone is not a secret
	}
	for _, tt := range tests {
		if got := kvurl.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// TestOpenErrorsKeepText (issue 22, item 9): an error of a bolt path holding
// "@" used to have every "t" replaced ("direcxxxxxory", "sxxxxxore is
// corrupxxxxx"): the one-letter text before "@" was taken for a password and
// scrubbed from the whole message.
func TestOpenErrorsKeepText(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/t@x/../missing/w.db" // not cleaned: the "t@" is the point
	_, err := kvurl.Open("bolt://"+path+"?ro=1", nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of a missing file = %v; want fs.ErrNotExist", err)
	}
	if msg := err.Error(); strings.Contains(msg, "xxxxx") || !strings.Contains(msg, path) || !strings.Contains(msg, "directory") {
		t.Errorf("Open error = %q; want the path %q and the words intact", msg, path)
	}
}

// TestScrub: Scrub hides what Redact hides wherever a message quotes it, and
// changes nothing else.
func TestScrub(t *testing.T) {
	tests := []struct{ msg, url, want string }{
		{`unknown command "redis://:s3cret@h/0" for "kv"`, "redis://:s3cret@h/0", `unknown command "redis://:xxxxx@h/0" for "kv"`},
		{`bad port "s3cret" in host`, "redis://u:s3cret@h", `bad port "xxxxx" in host`},
		{`quoted "redis://:s3cr\"et@h"`, `redis://:s3cr"et@h`, `quoted "redis://:xxxxx@h"`},
		{`token=abcd1234 leaked`, "redis://h?token=abcd1234", `token=xxxxx leaked`},
		{"the store is corrupt at t@x", "bolt://t@x/w.db", "the store is corrupt at t@x"},
		{"short p stays: port", "redis://u:p@h", "short p stays: port"},
		{"the whole redis://u:p@h goes", "redis://u:p@h", "the whole redis://u:xxxxx@h goes"},
	}
	for _, tt := range tests {
		if got := kvurl.Scrub(tt.msg, tt.url); got != tt.want {
			t.Errorf("Scrub(%q, %q) = %q; want %q", tt.msg, tt.url, got, tt.want)
		}
	}
}

// FuzzRedactKeepsBoltPaths: a bolt:// URL whose path holds no "?" comes out
// of Redact as it went in, whatever ":" and "@" it holds.
func FuzzRedactKeepsBoltPaths(f *testing.F) {
	f.Add("./runs@2021/kv.db")
	f.Add("/a@b/c@d.db")
	f.Add("x@y")
	f.Add("./snap-12:30@binance.db")
	f.Add("./a:binance_cache@x.db")
	f.Fuzz(func(t *testing.T, path string) {
		if strings.Contains(path, "?") {
			return
		}
		for _, scheme := range []string{"bolt://", "BOLT://", "bolt:"} {
			if u := scheme + path; kvurl.Redact(u) != u || kvurl.Scrub(path, u) != path {
				t.Fatalf("Redact(%q) = %q, Scrub(%q) = %q; want both unchanged", u, kvurl.Redact(u), path, kvurl.Scrub(path, u))
			}
		}
	})
}

// TestBoltPathWithColonBeforeAt (review of issue 22, #6): a bbolt path
// holding ":" before "@" was read as user:password: bolt://./snap-12:30@
// binance.db showed as bolt://./snap-12:xxxxx@binance.db, and with
// bolt://./a:binance_cache@x.db every "binance_cache" of a message (the
// namespace) became xxxxx. A bolt:// URL has no user information.
func TestBoltPathWithColonBeforeAt(t *testing.T) {
	for _, u := range []string{"bolt://./snap-12:30@binance.db", "bolt://./a:binance_cache@x.db", "bolt:///data/12:30@h/kv.db?ro=1", "BOLT://./a:bcdef@x.db"} {
		if got := kvurl.Redact(u); got != u {
			t.Errorf("Redact(%q) = %q; want it unchanged", u, got)
		}
	}
	msg := `key "nokey" not found (url=bolt://./a:binance_cache@x.db ns=binance_cache)`
	if got := kvurl.Scrub(msg, "bolt://./a:binance_cache@x.db"); got != msg {
		t.Errorf("Scrub(%q) = %q; want it unchanged", msg, got)
	}
}

// TestUserNameIsNotSecret (review of issue 22, #9): a URL with a user name
// and no password (redis://default@host, the Redis ACL default user) had
// the user hidden, and, being four bytes or more, replaced in every
// message: "default TTL" became "xxxxx TTL", ns=admin_sessions
// ns=xxxxx_sessions. A user name is not a secret.
func TestUserNameIsNotSecret(t *testing.T) {
	tests := []struct{ url, msg string }{
		{"redis://default@127.0.0.1:6379/0", "kv: set: default TTL: 876001h0m0s is too long (url=redis://default@127.0.0.1:6379/0 ns=a)"},
		{"redis://admin@127.0.0.1:6379/0", `key "nokey" not found (url=redis://admin@127.0.0.1:6379/0 ns=admin_sessions)`},
		{"rediss://admin@h", "admin_sessions"},
		{"redis//admin@h", "admin_sessions"},
	}
	for _, tt := range tests {
		if got := kvurl.Redact(tt.url); got != tt.url {
			t.Errorf("Redact(%q) = %q; want it unchanged", tt.url, got)
		}
		if got := kvurl.Scrub(tt.msg, tt.url); got != tt.msg {
			t.Errorf("Scrub(%q, %q) = %q; want it unchanged", tt.msg, tt.url, got)
		}
	}
	// A password with its user is still hidden, wherever it is quoted.
	if got := kvurl.Scrub("admin s3cretPW", "redis://admin:s3cretPW@h"); got != "admin xxxxx" {
		t.Errorf("Scrub of a password = %q; want %q", got, "admin xxxxx")
	}
}

// TestPasswordEndingAuthorityRefused (review of issue 22, #8): a password
// holding "/" after digits (base64 "6391/Zq8xYw") ends the authority
// there: url.Parse read ":6391" as the host of a redis+cluster:// URL, the
// client dialed it, and the error quoted it ("dial tcp :6391: connect:
// connection refused"). Such a URL is refused before anything is dialed,
// without any part of the password; percent-encoded, it is read whole.
func TestPasswordEndingAuthorityRefused(t *testing.T) {
	const pw = "6391/Zq8xYw"
	for _, u := range []string{
		"redis+cluster://:" + pw + "@127.0.0.1:1",
		"redis+cluster://user:" + pw + "@127.0.0.1:1?addr=127.0.0.1:2",
		"redis+sentinel://:" + pw + "@127.0.0.1:1?master=m",
		"redis://:" + pw + "@127.0.0.1:1/0",
		"rediss://u:" + pw + "@127.0.0.1:1",
		"redis+cluster://:pa?ss#word@127.0.0.1:1",
	} {
		b, err := kvurl.Open(u, nil)
		if err == nil {
			t.Errorf("Open(%q) = nil error; want ErrInvalidURL", u)
			if err := b.Close(); err != nil {
				t.Error(err)
			}
			continue
		}
		if !errors.Is(err, kvurl.ErrInvalidURL) || strings.Contains(err.Error(), "6391") || strings.Contains(err.Error(), "Zq8xYw") || strings.Contains(err.Error(), "ss#word") {
			t.Errorf("Open(%q) = %v; want ErrInvalidURL without any part of the password", u, err)
		}
	}
	b, err := kvurl.Open("redis+cluster://:6391%2FZq8xYw@127.0.0.1:1", nil)
	if errors.Is(err, kvurl.ErrInvalidURL) {
		t.Errorf("Open of the percent-encoded password = %v; want it read", err)
	}
	if err == nil {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	}
}
