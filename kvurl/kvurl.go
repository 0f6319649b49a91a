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
// Errors and Redact never show a password.
package kvurl

import (
	"errors"
	"fmt"
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

// Redact returns rawURL with whatever may be a password replaced by "xxxxx",
// for any input, well-formed or not: everything between the start of the
// authority and the last "@" but a plain user name (the password, even when the password
// holds "/", "@" or "?", or the "//" was mistyped), and the value of any query
// parameter whose name holds "pass", "secret" or "token".
func Redact(rawURL string) string {
	out := rawURL
	if start, at := userInfo(rawURL); at >= 0 {
		// Keep a user name that is plainly one ("user:" before the rest).
		if user, _, ok := strings.Cut(rawURL[start:at], ":"); ok && !strings.ContainsAny(user, "/?#") {
			start += len(user) + 1
		}
		out = rawURL[:start] + "xxxxx" + rawURL[at:]
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

// userInfo returns where the user information of rawURL may start and the
// index of the last "@" that ends it; at is -1 when there is no "@". The
// start is after the first "//", else after the scheme's ":" and any "/",
// else 0.
func userInfo(rawURL string) (start, at int) {
	at = strings.LastIndex(rawURL, "@")
	if at < 0 {
		return 0, -1
	}
	head := rawURL[:at]
	if i := strings.Index(head, "//"); i >= 0 {
		return i + 2, at
	}
	if i := strings.IndexByte(head, ':'); i >= 0 {
		start = i + 1
		for start < at && rawURL[start] == '/' {
			start++
		}
		return start, at
	}
	return 0, at
}

// scrub removes from a message every piece of what Redact hides in rawURL
// (and the parsed password), for errors of other libraries that may quote
// part of the URL.
func scrub(msg, rawURL, pass string) string {
	var secrets []string
	if pass != "" {
		secrets = append(secrets, pass)
	}
	if start, at := userInfo(rawURL); at >= 0 {
		hidden := rawURL[start:at]
		secrets = append(secrets, hidden)
		secrets = append(secrets, strings.FieldsFunc(hidden, func(r rune) bool { return strings.ContainsRune(":/@?#", r) })...)
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
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
	out := make([]string, 0, len(openers))
	for s := range openers {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
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
	q := u.Query()
	var bopts []kvredis.Option
	if h := q.Get("hashtag"); h != "" {
		on, err := strconv.ParseBool(h)
		if err != nil {
			return nil, fmt.Errorf("%w %q: hashtag=%q is not a boolean", ErrInvalidURL, Redact(rawURL), scrub(h, rawURL, ""))
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
			return nil, fmt.Errorf("%w %q: %s", ErrInvalidURL, Redact(rawURL), scrub(err.Error(), rawURL, pass))
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
				return nil, fmt.Errorf("%w %q: database %q is not a number", ErrInvalidURL, Redact(rawURL), scrub(p, rawURL, pass))
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
	if msg := scrub(err.Error(), rawURL, ""); msg != err.Error() {
		return &scrubbedError{msg: msg, err: err}
	}
	return err
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
		switch name {
		case "ro":
			on, err := strconv.ParseBool(vals[len(vals)-1])
			if err != nil {
				return "", nil, fmt.Errorf("ro=%q is not a boolean", vals[len(vals)-1])
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
