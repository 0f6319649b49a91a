package kvurl_test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/kvmap/kv/kvurl"
)

// shapes are URL templates where U, P and H stand for the user, the
// password and the host. They include the shapes that leaked: a mem:// URL
// printed raw, typos without "://" that url.Parse reads without user info, a
// password holding "/" after digits (read as a port), and a password in the
// query.
var shapes = []string{
	"redis://U:P@H",
	"rediss://U:P@H/0",
	"redis:/U:P@H",
	"redis//U:P@H",
	"redis:U:P@H",
	"mem://U:P@H",
	"redis+sentinel://U:P@H?master=m",
	"redis+cluster://U:P@H?addr=H",
	"redis://U:P@H?password=Q", // Q: the password query-escaped
	"redis://:P@H/x",
	"unknown://U:P@H",
	"U:P@H",
	"bolt://U:P@H",
}

func FuzzRedact(f *testing.F) {
	for i := range shapes {
		f.Add(uint8(i), "user", "hunter2pw", "127.0.0.1:6379")
	}
	f.Add(uint8(0), "user", "123/PW-secret", "host:1")
	f.Add(uint8(0), "u", "p@ss@word", "h:1")
	f.Add(uint8(0), "u", "pa?ss#word", "h:1")
	f.Add(uint8(3), "user", "pw/with/slashes", "h")
	f.Add(uint8(8), "", "q%20uoted", "h:1")
	f.Fuzz(func(t *testing.T, shape uint8, user, pass, host string) {
		tmpl := shapes[int(shape)%len(shapes)]
		u := strings.NewReplacer("U", user, "P", pass, "H", host, "Q", url.QueryEscape(pass)).Replace(tmpl)
		// The password must be recognisable: long enough, and nowhere in the
		// URL but where the template put it.
		if len(pass) < 4 || strings.Contains(tmpl, "P") == false {
			return
		}
		rest := strings.NewReplacer("U", user, "P", "", "H", host, "Q", "").Replace(tmpl)
		if url.QueryEscape(pass) != pass && strings.Contains(tmpl, "Q") {
			return // the escaped form is what the URL holds; it is checked below
		}
		if strings.Contains(strconv.Quote(rest), pass) || strings.Contains(rest, pass) || strings.Contains(user+host, pass) || strings.Contains("xxxxx", pass) {
			return
		}
		// A bolt:// URL is a file path, with no password, whatever ":" and
		// "@" it holds (a U:P@H shape with user "bolt" is one too): Redact
		// keeps paths readable.
		if strings.HasPrefix(strings.ToLower(u), "bolt:") {
			return
		}
		if got := kvurl.Redact(u); strings.Contains(got, pass) {
			t.Fatalf("Redact(%q) = %q holds the password", u, got)
		}
		b, err := kvurl.Open(u, nil)
		if err != nil {
			if strings.Contains(err.Error(), pass) {
				t.Fatalf("Open(%q) error %q holds the password", u, err)
			}
			return
		}
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
}
