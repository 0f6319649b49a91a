// Package kvurl opens a backend from a URL, as the kv command does:
//
//	mem://                                        a new in-process store, empty
//	bolt://PATH                                   a bbolt file; PATH is the text after the scheme:
//	                                              bolt://./kv.db, bolt:///var/lib/kv.db
//	redis://[user:password@]host:port[/db]        a Redis server
//	rediss://[user:password@]host:port[/db]       a Redis server over TLS
//	redis+cluster://host:port?addr=host:port&...  a Redis Cluster, with every seed node
//	redis+sentinel://host:port?master=NAME&addr=host:port
//	                                              the master NAME of Sentinels
//
// A Redis URL may carry hashtag=1 (backend/redis.WithHashTag). Clients made
// for a Redis URL have ContextTimeoutEnabled, so a context deadline bounds
// every call, and are closed with the backend.
//
// Errors and Redact never show a password.
package kvurl

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

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

// Redact returns rawURL with any password replaced by "xxxxx".
func Redact(rawURL string) string {
	if strings.HasPrefix(rawURL, "bolt://") {
		return rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// Unparsable: cut out whatever stands between "//" and "@".
		if i := strings.Index(rawURL, "//"); i >= 0 {
			if j := strings.LastIndex(rawURL, "@"); j > i {
				return rawURL[:i+2] + "xxxxx" + rawURL[j:]
			}
		}
		return rawURL
	}
	if _, has := u.User.Password(); !has {
		return rawURL
	}
	return u.Redacted()
}

// Options tune what Open makes.
type Options struct {
	// Bolt are options of bolt.Open, for bolt:// URLs.
	Bolt []bolt.Option
	// Memory are options of memory.New, for mem:// URLs.
	Memory []memory.Option
}

// Open opens the backend that rawURL names. Closing the backend closes what
// Open made for it: the file, or the Redis client.
func Open(rawURL string, opts *Options) (backend.Backend, error) {
	if opts == nil {
		opts = &Options{}
	}
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, fmt.Errorf("%w %q: no scheme (want mem://, bolt://, redis://, rediss://, redis+cluster:// or redis+sentinel://)", ErrInvalidURL, Redact(rawURL))
	}
	switch scheme {
	case "mem":
		if rest != "" {
			return nil, fmt.Errorf("%w %q: mem:// takes nothing after the scheme", ErrInvalidURL, rawURL)
		}
		return memory.New(opts.Memory...), nil
	case "bolt":
		if rest == "" {
			return nil, fmt.Errorf("%w %q: no path", ErrInvalidURL, rawURL)
		}
		return bolt.Open(rest, opts.Bolt...)
	case "redis", "rediss", "redis+cluster", "redis+sentinel":
		return openRedis(scheme, rawURL)
	}
	return nil, fmt.Errorf("%w %q: unknown scheme %q", ErrInvalidURL, Redact(rawURL), scheme)
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
			return nil, fmt.Errorf("%w %q: hashtag=%q is not a boolean", ErrInvalidURL, u.Redacted(), h)
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
			return nil, fmt.Errorf("%w %q: %s", ErrInvalidURL, u.Redacted(), scrub(err, pass))
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
			return nil, fmt.Errorf("%w %q: redis+sentinel needs ?master=NAME", ErrInvalidURL, u.Redacted())
		}
		db := 0
		if p := strings.Trim(u.Path, "/"); p != "" {
			if db, err = strconv.Atoi(p); err != nil {
				return nil, fmt.Errorf("%w %q: database %q is not a number", ErrInvalidURL, u.Redacted(), p)
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

// scrub removes a password from an error message.
func scrub(err error, pass string) string {
	msg := err.Error()
	if pass != "" {
		msg = strings.ReplaceAll(msg, pass, "xxxxx")
	}
	return msg
}
