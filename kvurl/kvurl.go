// Package kvurl opens a backend from a URL, as the kv command does:
//
//	mem://                                        a new in-process store, empty
//	bolt://PATH[?ro=1]                            a bbolt file; PATH is the text after the scheme:
//	                                              bolt://./kv.db, bolt:///var/lib/kv.db; ro=1
//	                                              opens it read-only (bolt.WithReadOnly)
//	redis://[user:password@]host:port[/db]        a Redis server
//	rediss://[user:password@]host:port[/db]       a Redis server over TLS
//	redis+cluster://host:port?addr=host:port&...  a Redis Cluster, with every seed node
//	redis+sentinel://host:port?master=NAME&addr=host:port
//	                                              the master NAME of Sentinels
//
// Other backends plug in with Register. A Redis URL may carry hashtag=1 (backend/redis.WithHashTag). Clients made
// for a Redis URL have ContextTimeoutEnabled, so a context deadline bounds
// every call, and are closed with the backend.
//
// A redis:// or rediss:// URL takes go-redis's parameters too (ParseURL:
// dial_timeout=3s, ...). A parameter is given once (addr= as many times as
// needed), and an unknown parameter, a database given both as the path and
// as db=, and a path on a redis+cluster URL (a cluster has one database) are
// refused with ErrInvalidURL, so that no parameter is silently ignored.
//
// A password holding "/", "?", "#", "@" or "%" is percent-encoded, as in any
// URL (%2F, %3F, %23, %40, %25): Open refuses a Redis URL whose password, as
// Redact sees it (up to the last "@"), is not the one a URL parser reads,
// rather than dial a part of it as the host.
//
// Errors and Redact never show a password.
package kvurl

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
	"github.com/kvmap/kv/backend/bolt"
	"github.com/kvmap/kv/backend/memory"
	kvredis "github.com/kvmap/kv/backend/redis"
)

// Default is the URL used when none is given and KV_URL is not set.
const Default = "bolt://./kv.db"

// ErrInvalidURL is returned for a URL kvurl cannot open.
var ErrInvalidURL = errors.New("kvurl: invalid URL")

// Redact returns rawURL with its password replaced by "xxxxx", for any
// input, well-formed or not, and leaves the rest readable. The password is
// the text between the first ":" of the user information and the last "@"
// (so a password holding "/", "@" or "?" is hidden whole, as is one typed
// with a mistyped "//"), and the value of any query parameter whose name
// holds "pass", "secret" or "token". User information without a ":" is a
// user name, which is not hidden (redis://default@host stays as it is). A
// bolt:// URL has no user information: its text is a file path, which may
// hold ":" and "@" (bolt://./snap-12:30@binance.db stays as it is).
func Redact(rawURL string) string {
	out := rawURL
	if start, end := password(rawURL); start < end {
		out = rawURL[:start] + "xxxxx" + rawURL[end:]
	}
	q := strings.IndexByte(out, '?')
	if q < 0 {
		return out
	}
	return out[:q] + secretParam.ReplaceAllString(out[q:], "${1}xxxxx")
}

// secretParam matches the value of a query parameter whose name holds
// "pass", "secret" or "token".
var secretParam = regexp.MustCompile(`(?i)((?:pass|secret|token)[^=&]*=)[^&]*`)

// schemePrefix matches a scheme and what separates it from the authority:
// "redis://", "redis:/" and "redis:" (an opaque form, as in user:pass@host),
// and the mistyped "redis//".
var schemePrefix = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*(:/*|//+)`)

// password returns where the password of rawURL starts and ends (the
// text Redact hides); start == end when there is none. The user
// information runs from the authority's start (after the scheme and its
// slashes, else from the start of the text) to the last "@"; the password
// is what follows its first ":".
func password(rawURL string) (start, end int) {
	at := strings.LastIndex(rawURL, "@")
	if at < 0 || isBolt(rawURL) {
		return 0, 0
	}
	authority := 0
	if m := schemePrefix.FindString(rawURL); m != "" && len(m) <= at {
		authority = len(m)
		// An opaque "name:" (no slash) may be the user of user:pass@host.
		if strings.HasSuffix(m, ":") {
			authority = 0
		}
	}
	info := rawURL[authority:at]
	if i := strings.IndexByte(info, ':'); i >= 0 {
		return authority + i + 1, at
	}
	return 0, 0 // a user name alone: not a secret
}

// isBolt reports whether rawURL is of the bolt scheme, in any spelling
// (bolt://, bolt:/, bolt:, BOLT://): a file path, with no user information.
func isBolt(rawURL string) bool {
	m := schemePrefix.FindString(rawURL)
	return m != "" && strings.EqualFold(strings.TrimRight(m, ":/"), "bolt")
}

// secrets returns what Redact hides in rawURL, as text that a message may
// quote on its own: the password, the values of secret query parameters,
// and, with pieces, the parts of the password between ":", "/", "@", "?" and
// "#" (a parser that reads a password holding "/" as host and path quotes
// such parts). Text shorter than minSecret is left out: replacing it
// wherever it appears would mangle messages (a one-letter path read as user
// information turned "directory" into "direcxxxxxory").
func secrets(rawURL string, pieces bool) []string {
	var out []string
	add := func(s string) {
		if len(s) >= minSecret && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if start, end := password(rawURL); start < end {
		hidden := rawURL[start:end]
		add(hidden)
		if pieces {
			for _, p := range strings.FieldsFunc(hidden, func(r rune) bool { return strings.ContainsRune(":/@?#", r) }) {
				add(p)
			}
		}
	}
	if q := strings.IndexByte(rawURL, '?'); q >= 0 {
		for _, m := range secretParam.FindAllStringSubmatchIndex(rawURL[q:], -1) {
			add(rawURL[q+m[3] : q+m[1]])
		}
	}
	// The longest first, so that a part does not break up a whole.
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// minSecret is the length below which a secret is hidden only where the
// whole URL appears in a message, not wherever its text appears.
const minSecret = 4

// Scrub returns msg with rawURL, wherever it appears (as is or quoted as by
// %q), replaced by Redact(rawURL), and with each part of what Redact hides
// (a password of at least four bytes, the value of a secret query
// parameter) replaced by "xxxxx" wherever it appears on its own. A program
// that prints messages quoting a URL the user typed (a command line's
// errors) passes them through Scrub. Text that Redact keeps is never
// changed: a URL without a password leaves msg as it is.
func Scrub(msg, rawURL string) string {
	return scrub(msg, rawURL, "", false)
}

// scrub is Scrub that also hides pass (a password as a URL parser read it)
// and, with pieces, the parts of the password (see secrets): for errors of
// libraries that parse the URL and may quote a part of it.
func scrub(msg, rawURL, pass string, pieces bool) string {
	if red := Redact(rawURL); red != rawURL {
		msg = strings.ReplaceAll(msg, rawURL, red)
		if q, rq := strconv.Quote(rawURL), strconv.Quote(red); q[1:len(q)-1] != rawURL {
			msg = strings.ReplaceAll(msg, q[1:len(q)-1], rq[1:len(rq)-1])
		}
	}
	all := secrets(rawURL, pieces)
	if len(pass) >= minSecret && !slices.Contains(all, pass) {
		all = append([]string{pass}, all...)
	}
	for _, s := range all {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
		if q := strconv.Quote(s); q[1:len(q)-1] != s {
			msg = strings.ReplaceAll(msg, q[1:len(q)-1], "xxxxx")
		}
	}
	return msg
}

// Options tune what Open makes.
type Options struct {
	// Bolt are options of bolt.Open, for bolt:// URLs.
	Bolt []bolt.Option
	// Memory are options of memory.New, for mem:// URLs.
	Memory []memory.Option
}

// Opener opens the backend a URL of its scheme names. opts is never nil.
// Errors should wrap ErrInvalidURL for a URL the opener cannot read, and must
// not print a password: Redact gives the URL as errors may show it.
type Opener func(rawURL string, opts *Options) (backend.Backend, error)

var (
	openersMu sync.RWMutex
	openers   = map[string]Opener{}
)

// Register makes a backend available to Open (and so to the kv command)
// under scheme, as database/sql drivers register themselves: a third-party
// backend calls it from an init function, and a program that imports the
// package opens its URLs. The built-in schemes are registered by this
// package. Register panics when open is nil or the scheme is taken, which is
// a programming error found at start-up.
func Register(scheme string, open Opener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	if open == nil {
		panic("kvurl: Register of a nil Opener for " + scheme)
	}
	if _, dup := openers[scheme]; dup {
		panic("kvurl: Register called twice for scheme " + scheme)
	}
	openers[scheme] = open
}

// Schemes returns the registered schemes, sorted.
func Schemes() []string {
	openersMu.RLock()
	defer openersMu.RUnlock()
	return slices.Sorted(maps.Keys(openers))
}

func init() {
	Register("mem", func(rawURL string, opts *Options) (backend.Backend, error) {
		if rawURL != "mem://" {
			return nil, fmt.Errorf("%w %q: mem:// takes nothing after the scheme", ErrInvalidURL, Redact(rawURL))
		}
		return memory.New(opts.Memory...), nil
	})
	Register("bolt", func(rawURL string, opts *Options) (backend.Backend, error) {
		path, bopts, err := boltParams(strings.TrimPrefix(rawURL, "bolt://"))
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrInvalidURL, Redact(rawURL), err)
		}
		b, err := bolt.Open(path, append(bopts, opts.Bolt...)...)
		if err != nil {
			return nil, scrubbed(err, rawURL)
		}
		return b, nil
	})
	for _, scheme := range []string{"redis", "rediss", "redis+cluster", "redis+sentinel"} {
		Register(scheme, func(rawURL string, _ *Options) (backend.Backend, error) { return openRedis(scheme, rawURL) })
	}
}

// Open opens the backend that rawURL names, through the Opener registered
// for its scheme. Closing the backend closes what Open made for it: the file,
// or the Redis client.
func Open(rawURL string, opts *Options) (backend.Backend, error) {
	if opts == nil {
		opts = &Options{}
	}
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, fmt.Errorf("%w %q: no scheme (want one of %s)", ErrInvalidURL, Redact(rawURL), schemeList())
	}
	openersMu.RLock()
	open := openers[scheme]
	openersMu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("%w %q: unknown scheme %q (want one of %s)", ErrInvalidURL, Redact(rawURL), scheme, schemeList())
	}
	return open(rawURL, opts)
}

// schemeList is the registered schemes, for messages: "mem://, bolt://, ...".
func schemeList() string {
	ss := Schemes()
	for i := range ss {
		ss[i] += "://"
	}
	return strings.Join(ss, ", ")
}

func openRedis(scheme, rawURL string) (backend.Backend, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w %q", ErrInvalidURL, Redact(rawURL))
	}
	if err := samePassword(rawURL, u); err != nil {
		return nil, err
	}
	q := u.Query()
	if err := redisParams(scheme, u.Path, q); err != nil {
		return nil, fmt.Errorf("%w %q: %s", ErrInvalidURL, Redact(rawURL), scrub(err.Error(), rawURL, "", true))
	}
	var bopts []kvredis.Option
	if h := q.Get("hashtag"); h != "" {
		on, err := strconv.ParseBool(h)
		if err != nil {
			return nil, fmt.Errorf("%w %q: hashtag=%q is not a boolean", ErrInvalidURL, Redact(rawURL), scrub(h, rawURL, "", true))
		}
		if on {
			bopts = append(bopts, kvredis.WithHashTag())
		}
		q.Del("hashtag")
	}
	bopts = append(bopts, kvredis.WithCloseClient())
	user := u.User.Username()
	pass, _ := u.User.Password()

	var client goredis.UniversalClient
	switch scheme {
	case "redis", "rediss":
		u.RawQuery = q.Encode()
		o, err := goredis.ParseURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("%w %q: %s", ErrInvalidURL, Redact(rawURL), scrub(err.Error(), rawURL, pass, true))
		}
		o.ContextTimeoutEnabled = true
		client = goredis.NewClient(o)
	case "redis+cluster":
		addrs := append([]string{u.Host}, q["addr"]...)
		client = goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs: addrs, Username: user, Password: pass, ContextTimeoutEnabled: true,
		})
	case "redis+sentinel":
		master := q.Get("master")
		if master == "" {
			return nil, fmt.Errorf("%w %q: redis+sentinel needs ?master=NAME", ErrInvalidURL, Redact(rawURL))
		}
		db := 0
		if p := strings.Trim(u.Path, "/"); p != "" {
			if db, err = strconv.Atoi(p); err != nil {
				return nil, fmt.Errorf("%w %q: database %q is not a number", ErrInvalidURL, Redact(rawURL), scrub(p, rawURL, pass, true))
			}
		}
		client = goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName: master, SentinelAddrs: append([]string{u.Host}, q["addr"]...),
			Username: user, Password: pass, DB: db, ContextTimeoutEnabled: true,
		})
	}
	b, err := kvredis.New(client, bopts...)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	return b, nil
}

// samePassword checks that url.Parse read in rawURL (as u) the password
// that Redact hides. A password holding "/", "?" or "#" ends the authority
// there: url.Parse then reads its first part as the host (":6391" of
// redis+cluster://:6391/Zq8xYw@host), and a client would dial it and quote
// it in its errors. Such a URL is refused, with the encoding to use.
func samePassword(rawURL string, u *url.URL) error {
	start, end := password(rawURL)
	if start == end {
		return nil
	}
	want, err := url.PathUnescape(rawURL[start:end])
	got, ok := u.User.Password()
	if err == nil && ok && got == want {
		return nil
	}
	return fmt.Errorf(`%w %q: the password must be percent-encoded where it holds "/", "?", "#", "@" or "%%" (as %%2F, %%3F, %%23, %%40, %%25)`,
		ErrInvalidURL, Redact(rawURL))
}

// scrubbedError is an error whose message had parts of a URL's user
// information removed; errors.Is and errors.As still see the original.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrubbed returns err, or err with what may be a password in rawURL
// removed from its message.
func scrubbed(err error, rawURL string) error {
	if msg := scrub(err.Error(), rawURL, "", false); msg != err.Error() {
		return &scrubbedError{msg: msg, err: err}
	}
	return err
}

// redisParams refuses the parameters of a Redis URL that would be ignored or
// that contradict each other (see the package documentation); go-redis
// checks the names of redis:// and rediss://.
func redisParams(scheme, path string, q url.Values) error {
	takes := map[string]string{"redis+cluster": "addr, hashtag", "redis+sentinel": "addr, hashtag, master"}[scheme]
	for name, vals := range q {
		switch {
		case len(vals) > 1 && name != "addr":
			return fmt.Errorf("%s given %d times", name, len(vals))
		case takes != "" && !slices.Contains(strings.Split(takes, ", "), name):
			return fmt.Errorf("unknown parameter %q (%s:// takes %s)", name, scheme, takes)
		}
	}
	switch db := strings.Trim(path, "/"); {
	case db != "" && scheme == "redis+cluster":
		return fmt.Errorf("path %q: a cluster has one database", path)
	case db != "" && q.Has("db"):
		return fmt.Errorf("database %q and db=%s both set the database", db, q.Get("db"))
	}
	return nil
}

// boltParams splits the text after bolt:// into the path and the options of
// its query (ro=1). A path cannot hold "?".
func boltParams(rest string) (string, []bolt.Option, error) {
	path, query, _ := strings.Cut(rest, "?")
	if path == "" {
		return "", nil, errors.New("no path")
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", nil, fmt.Errorf("query: %w", err)
	}
	var opts []bolt.Option
	for name, vals := range q {
		switch {
		case len(vals) > 1:
			return "", nil, fmt.Errorf("%s given %d times", name, len(vals))
		case name == "ro":
			on, err := strconv.ParseBool(vals[0])
			if err != nil {
				return "", nil, fmt.Errorf("ro=%q is not a boolean", vals[0])
			}
			if on {
				opts = append(opts, bolt.WithReadOnly())
			}
		default:
			return "", nil, fmt.Errorf("unknown parameter %q (bolt:// takes ro=1)", name)
		}
	}
	return path, opts, nil
}
