package redis

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// respError is an error reply of the server. Like go-redis's errors it
// implements goredis.Error.
type respError string

func (e respError) Error() string { return string(e) }

// RedisError marks the error as a reply of the server.
func (respError) RedisError() {}

// pushFrame is a RESP3 push: what the server sends of its own accord, such
// as ["invalidate", keys] (keys nil for FLUSHDB and FLUSHALL).
type pushFrame []any

var errMalformed = errors.New("malformed RESP")

// readRESP reads one RESP2 or RESP3 value: a string (simple, bulk,
// verbatim, double, big number), an int64, a bool, nil, a respError, an
// []any (array, set, map as keys and values in turn) or a pushFrame;
// attributes are skipped.
func readRESP(r *bufio.Reader) (any, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, errMalformed
	}
	kind, body := line[0], string(line[1:len(line)-2])
	switch kind {
	case '+', ',', '(':
		return body, nil
	case '-':
		return respError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '#':
		return body == "t", nil
	case '_':
		return nil, nil
	}
	n, err := strconv.Atoi(body)
	if err != nil {
		return nil, errMalformed
	}
	if n < 0 {
		return nil, nil // RESP2's null bulk string and null array
	}
	switch kind {
	case '$', '=', '!':
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		s := string(buf[:n])
		if kind == '!' {
			return respError(s), nil
		}
		if kind == '=' && len(s) >= 4 {
			s = s[4:] // "txt:"
		}
		return s, nil
	case '*', '~', '>', '%', '|':
		if kind == '%' || kind == '|' {
			n *= 2
		}
		vals := make([]any, n)
		for i := range vals {
			if vals[i], err = readRESP(r); err != nil {
				return nil, err
			}
		}
		switch kind {
		case '>':
			return pushFrame(vals), nil
		case '|':
			return readRESP(r) // the value the attributes are about
		}
		return vals, nil
	}
	return nil, errMalformed
}

// respConn is a RESP3 connection of the watch's own: commands go out in
// order, and read hands their replies, in the same order, to the callbacks
// sent with them, and every push frame to its push callback.
type respConn struct {
	nc     net.Conn
	r      *bufio.Reader
	closed atomic.Bool

	mu      sync.Mutex // orders the writes and the callbacks
	pending []awaited  // oldest first
}

// awaited is a command awaiting its reply.
type awaited struct {
	sent  time.Time
	reply func(v any, err error) // err: an error reply
}

func newRESPConn(nc net.Conn) *respConn {
	return &respConn{nc: nc, r: bufio.NewReaderSize(nc, 32<<10)}
}

// send writes a command; reply is called with its reply. A write that the
// server does not take within silentAfter fails.
func (c *respConn) send(reply func(v any, err error), args ...string) error {
	buf := strconv.AppendInt([]byte{'*'}, int64(len(args)), 10)
	for _, a := range args {
		buf = strconv.AppendInt(append(buf, "\r\n$"...), int64(len(a)), 10)
		buf = append(append(buf, "\r\n"...), a...)
	}
	buf = append(buf, "\r\n"...)
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(silentAfter))
	if _, err := c.nc.Write(buf); err != nil {
		c.close()
		return err
	}
	c.pending = append(c.pending, awaited{sent: time.Now(), reply: reply})
	return nil
}

// waiting returns how many commands await their reply, and when the oldest
// was sent.
func (c *respConn) waiting() (int, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return 0, time.Time{}
	}
	return len(c.pending), c.pending[0].sent
}

// readOne reads one frame and hands it on.
func (c *respConn) readOne(push func(pushFrame)) error {
	v, err := readRESP(c.r)
	if err != nil {
		return err
	}
	if p, ok := v.(pushFrame); ok {
		push(p)
		return nil
	}
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.mu.Unlock()
		return errors.New("a reply to no command")
	}
	a := c.pending[0]
	c.pending = c.pending[1:]
	c.mu.Unlock()
	if e, ok := v.(respError); ok {
		a.reply(nil, e)
	} else {
		a.reply(v, nil)
	}
	return nil
}

// close closes the connection: a read or write under way fails.
func (c *respConn) close() {
	if !c.closed.Swap(true) {
		_ = c.nc.Close()
	}
}
