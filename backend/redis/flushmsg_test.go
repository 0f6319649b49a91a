package redis

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// TestFlushMessageIsUnreadable pins what the watch relies on to see FLUSHDB
// and FLUSHALL: Redis sends them on the invalidation channel as a message
// whose list of keys is null, and go-redis's PubSub (which gives no access
// to the raw reply) returns an error for it that is not a connection
// failure, after reading it in full: the connection goes on with the next
// message. The watch takes any such error as "every key may have changed"
// (ChangeAll), without matching its text. A fake server sends the bytes
// Redis sends; if go-redis ever returns the message instead, it must be one
// with no keys (which the watch takes as ChangeAll too).
func TestFlushMessageIsUnreadable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() { served <- fakeInvalidations(ln) }()
	c := goredis.NewClient(&goredis.Options{Addr: ln.Addr().String(), Protocol: 2, MaxRetries: -1})
	defer c.Close()
	ps := c.Subscribe(t.Context(), invalidateChannel)
	defer ps.Close()
	msg, err := ps.ReceiveTimeout(t.Context(), 5*time.Second)
	if _, ok := msg.(*goredis.Subscription); err != nil || !ok {
		t.Fatalf("first reply = %v, %v; want the subscription", msg, err)
	}
	msg, err = ps.ReceiveTimeout(t.Context(), 5*time.Second)
	switch m := msg.(type) {
	case nil:
		if connFailure(err) {
			t.Fatalf("the null list of keys read as a connection failure: %v", err)
		}
	case *goredis.Message:
		if len(m.PayloadSlice) != 0 || m.Payload != "" {
			t.Fatalf("the null list of keys read as keys %q %v", m.Payload, m.PayloadSlice)
		}
	default:
		t.Fatalf("the null list of keys read as %T %v, %v", msg, msg, err)
	}
	msg, err = ps.ReceiveTimeout(t.Context(), 5*time.Second)
	if m, ok := msg.(*goredis.Message); err != nil || !ok || len(m.PayloadSlice) != 1 || m.PayloadSlice[0] != "ns:k" {
		t.Fatalf("the message after it = %v, %v; want the keys [ns:k]", msg, err)
	}
	ps.Close()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// fakeInvalidations serves one connection as Redis serves a RESP2
// connection that subscribes to the invalidation channel: an error for
// HELLO (a server without it), OK for anything else, the subscription,
// then FLUSHDB's message and a write's.
func fakeInvalidations(ln net.Listener) error {
	cn, err := ln.Accept()
	if err != nil {
		return err
	}
	defer cn.Close()
	r := bufio.NewReader(cn)
	for {
		args, err := readCommand(r)
		if err != nil {
			return fmt.Errorf("fake server: %w", err)
		}
		var reply string
		switch strings.ToUpper(args[0]) {
		case "HELLO":
			reply = "-ERR unknown command 'HELLO'\r\n"
		case "SUBSCRIBE":
			ch := args[1]
			reply = "*3\r\n$9\r\nsubscribe\r\n$" + strconv.Itoa(len(ch)) + "\r\n" + ch + "\r\n:1\r\n" +
				"*3\r\n$7\r\nmessage\r\n$" + strconv.Itoa(len(ch)) + "\r\n" + ch + "\r\n*-1\r\n" +
				"*3\r\n$7\r\nmessage\r\n$" + strconv.Itoa(len(ch)) + "\r\n" + ch + "\r\n*1\r\n$4\r\nns:k\r\n"
		default:
			reply = "+OK\r\n"
		}
		if _, err := cn.Write([]byte(reply)); err != nil {
			return err
		}
		if strings.EqualFold(args[0], "SUBSCRIBE") {
			_, _ = r.ReadByte() // until the client closes
			return nil
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
