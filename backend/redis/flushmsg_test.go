package redis

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv/backend"
)

// TestFlushRecognisedFromFrame: FLUSHDB and FLUSHALL reach a tracking
// connection as an invalidation whose list of keys is null (RESP3: "_"),
// which the watch reads from the frame itself and reports as ChangeAll,
// and the connection goes on with the next frame. A fake server sends the
// bytes Redis 7 sends on a RESP3 connection with BCAST tracking.
func TestFlushRecognisedFromFrame(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() { served <- fakeTracking(ln) }()
	c := goredis.NewClient(&goredis.Options{Addr: ln.Addr().String(), MaxRetries: -1})
	defer c.Close()
	b, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan backend.Change, 100)
	stop, err := b.watch(t.Context(), "ns:", func(ch backend.Change) {
		if ch.Kind != backend.ChangeSynced {
			reports <- ch
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		select {
		case ch := <-reports:
			got = append(got, fmt.Sprint(ch.Kind, ch.Keys))
		case <-time.After(10 * time.Second):
			t.Fatalf("reports after 10s: %v", got)
		}
	}
	stop()
	if want := []string{"ChangeLive []", "ChangeAll []", "ChangeKeys [ns:k]"}; !reflect.DeepEqual(got, want) {
		t.Errorf("reports = %q; want %q", got, want)
	}
	if err := b.Close(); err != nil {
		t.Error(err)
	}
	if err := <-served; err != nil {
		t.Error(err)
	}
}

// fakeTracking serves one connection as Redis 7 serves a RESP3 tracking
// connection: HELLO's map (role master), OK for CLIENT TRACKING, and with
// the first PONG, FLUSHDB's invalidation, then a write's (of a key of
// another prefix too, which the watch leaves out).
func fakeTracking(ln net.Listener) error {
	cn, err := ln.Accept()
	if err != nil {
		return err
	}
	defer cn.Close()
	r := bufio.NewReader(cn)
	pinged := false
	for {
		args, err := readCommand(r)
		if err == io.EOF {
			return nil // the watch stopped
		}
		if err != nil {
			return fmt.Errorf("fake server: %w", err)
		}
		var reply string
		switch strings.ToUpper(args[0]) {
		case "HELLO":
			reply = "%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
		case "PING":
			if !pinged {
				reply = ">2\r\n$10\r\ninvalidate\r\n_\r\n" +
					">2\r\n$10\r\ninvalidate\r\n*2\r\n$4\r\nns:k\r\n$4\r\nxx:k\r\n"
				pinged = true
			}
			reply += "+PONG\r\n"
		default:
			reply = "+OK\r\n"
		}
		if _, err := cn.Write([]byte(reply)); err != nil {
			return err
		}
	}
}

// readCommand reads one RESP array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("bad command header %q", line)
	}
	args := make([]string, n)
	for i := range args {
		if line, err = r.ReadString('\n'); err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil {
			return nil, fmt.Errorf("bad bulk header %q", line)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

// TestReadRESP reads each kind of RESP2 and RESP3 value.
func TestReadRESP(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"+OK\r\n", "OK"},
		{"-ERR x\r\n", respError("ERR x")},
		{":-42\r\n", int64(-42)},
		{"$3\r\nabc\r\n", "abc"},
		{"$-1\r\n", nil},
		{"*-1\r\n", nil},
		{"_\r\n", nil},
		{"#t\r\n", true},
		{",1.5\r\n", "1.5"},
		{"(123\r\n", "123"},
		{"=7\r\ntxt:abc\r\n", "abc"},
		{"!5\r\nERR x\r\n", respError("ERR x")},
		{"*2\r\n:1\r\n$1\r\na\r\n", []any{int64(1), "a"}},
		{"~1\r\n+x\r\n", []any{"x"}},
		{"%1\r\n+k\r\n:1\r\n", []any{"k", int64(1)}},
		{"|1\r\n+a\r\n+b\r\n+v\r\n", "v"},
		{">2\r\n$10\r\ninvalidate\r\n_\r\n", pushFrame{"invalidate", nil}},
		{">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n", pushFrame{"invalidate", []any{"k"}}},
	} {
		got, err := readRESP(bufio.NewReader(strings.NewReader(tc.in)))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("readRESP(%q) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"+OK\n", "?1\r\n", "$x\r\n", "$3\r\nab"} {
		if got, err := readRESP(bufio.NewReader(strings.NewReader(in))); err == nil {
			t.Errorf("readRESP(%q) = %#v; want an error", in, got)
		}
	}
}
