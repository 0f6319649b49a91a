package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/auth"
)

// runNode keeps a tracking connection to n until ctx ends.
func (h *hub) runNode(ctx context.Context, n *node) {
	wait := retryMin
	for {
		if cn, err := h.connect(ctx, n); err == nil {
			wait = retryMin
			h.serve(ctx, n, cn)
		} else if ctx.Err() == nil {
			h.mu.Lock()
			h.lostAll(fmt.Errorf("redis: tracking connection to %s: %w", n.addr, err), false)
			h.unlock()
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return
		}
		wait = min(2*wait, retryMax)
	}
}

// connect makes n's connection: HELLO 3, CLIENT TRACKING ON BCAST with the
// prefixes of every watch, and the check that the server is a master; on
// success the connection is n's, live.
func (h *hub) connect(ctx context.Context, n *node) (*respConn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectWithin)
	defer cancel()
	nc, err := n.opt.Dialer(ctx, n.opt.Network, n.opt.Addr)
	if err != nil {
		return nil, err
	}
	// A handshake held up by a stalled server (or a proxy that accepts and
	// queues connections) ends with ctx.
	unhook := context.AfterFunc(ctx, func() { _ = nc.Close() })
	cn := newRESPConn(nc)
	user, pass, err := credentials(ctx, n.opt)
	if err != nil {
		unhook()
		cn.close()
		return nil, err
	}
	var errs []error
	fail := func(_ any, err error) { errs = append(errs, err) }
	if pass != "" {
		// Apart from HELLO, whose error when refused quotes its arguments.
		_ = cn.send(fail, "AUTH", cmp.Or(user, "default"), pass)
	}
	hello := []string{"HELLO", "3"}
	if n.opt.ClientName != "" {
		hello = append(hello, "SETNAME", n.opt.ClientName)
	}
	_ = cn.send(func(v any, err error) {
		if err != nil {
			err = fmt.Errorf("HELLO 3 (RESP3, which tracking needs): %w", err)
		} else if h.b.cluster == nil {
			err = h.checkReply(n, v, nil)
		}
		errs = append(errs, err)
	}, hello...)
	h.mu.Lock()
	prefixes := cover(h.wires())
	h.mu.Unlock()
	if len(prefixes) > 0 {
		_ = cn.send(fail, trackArgs(prefixes)...)
	}
	if h.b.cluster != nil {
		_ = cn.send(func(v any, err error) { errs = append(errs, h.checkReply(n, v, err)) }, "CLUSTER", "NODES")
	}
	for err == nil {
		if k, _ := cn.waiting(); k == 0 {
			break
		}
		err = cn.readOne(h.push)
	}
	if !unhook() && err == nil {
		err = ctx.Err()
	}
	if err = errors.Join(append(errs, err)...); err == nil && n.sentinel() {
		err = n.askSentinels(ctx, nc.RemoteAddr().String())
	}
	if err != nil {
		cn.close()
		return nil, err
	}
	h.mu.Lock()
	defer h.unlock()
	n.cn, n.asked, n.tracked, n.synced = cn, prefixes, slices.Clone(prefixes), time.Now()
	h.track(n) // the watches that started meanwhile
	h.maybeLive()
	return cn, nil
}

// serve reads n's connection cn, PINGs it every syncEvery and checks its
// server every checkEvery, until it fails or ctx ends.
func (h *hub) serve(ctx context.Context, n *node, cn *respConn) {
	lost := func(err error) {
		h.mu.Lock()
		h.drop(n, cn, err)
		h.unlock()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var err error
		for err == nil {
			err = cn.readOne(h.push)
		}
		lost(fmt.Errorf("redis: tracking connection to %s: %w", n.addr, err))
	}()
	server := cn.nc.RemoteAddr().String()
	tick := time.NewTicker(syncEvery)
	defer tick.Stop()
	nextCheck := time.Now().Add(checkEvery)
	for {
		select {
		case <-ctx.Done():
			h.mu.Lock()
			if n.cn == cn {
				n.cn = nil // given up without a report: the hub or the node ends
			}
			h.mu.Unlock()
			cn.close() // the reader ends with it, or after a report under way
			return
		case <-done:
			return
		case now := <-tick.C:
			k, oldest := cn.waiting()
			if k > 0 && now.Sub(oldest) >= silentAfter {
				lost(fmt.Errorf("redis: tracking connection to %s: no reply for %v", n.addr, silentAfter))
				continue
			}
			if k < maxPending {
				at := time.Now()
				if err := cn.send(func(_ any, err error) {
					h.mu.Lock()
					defer h.unlock()
					if err != nil {
						h.drop(n, cn, fmt.Errorf("redis: tracking connection to %s: PING: %w", n.addr, err))
					} else if n.cn == cn {
						n.synced = at
						h.synced()
					}
				}, "PING"); err != nil {
					lost(fmt.Errorf("redis: tracking connection to %s: PING: %w", n.addr, err))
					continue
				}
			}
			if now.Before(nextCheck) {
				continue
			}
			nextCheck = now.Add(checkEvery)
			if n.sentinel() {
				cctx, cancel := context.WithTimeout(ctx, checkWithin)
				err := n.askSentinels(cctx, server)
				cancel()
				if err != nil {
					lost(err)
					continue
				}
			}
			args := []string{"HELLO", "3"}
			if h.b.cluster != nil {
				args = []string{"CLUSTER", "NODES"}
			}
			if err := cn.send(func(v any, err error) {
				if err = h.checkReply(n, v, err); err != nil {
					lost(err)
				}
			}, args...); err != nil {
				lost(fmt.Errorf("redis: tracking connection to %s: %w", n.addr, err))
			}
		}
	}
}

// checkReply checks n's reply v (or error err) to HELLO 3 (its role) or,
// on a cluster, to CLUSTER NODES (the node's flags, and the masters it
// lists, which go to the hub): an error unless the server says it is a
// master.
func (h *hub) checkReply(n *node, v any, err error) error {
	if err != nil {
		return fmt.Errorf("redis: watch: checking that %s is a master: %w", n.addr, err)
	}
	if h.b.cluster != nil {
		reply, _ := v.(string)
		view := parseClusterNodes(reply)
		if !view.master {
			return fmt.Errorf("redis: watch: %s is no longer a master", n.addr)
		}
		h.mu.Lock()
		n.view, n.viewAt = view.masters, time.Now()
		if slices.ContainsFunc(view.masters, func(a string) bool { return h.nodes[a] == nil }) {
			select { // a master joined: track it
			case h.kick <- struct{}{}:
			default:
			}
		}
		h.mu.Unlock()
		return nil
	}
	role := ""
	if kv, ok := v.([]any); ok {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == "role" {
				role, _ = kv[i+1].(string)
			}
		}
	}
	if role != "master" {
		return fmt.Errorf("redis: watch: %s is no longer a master (role %q)", n.addr, role)
	}
	return nil
}

// sentinel reports whether n is the master that Sentinel names.
func (n *node) sentinel() bool { return n.opt.Addr == failoverAddr }

// askSentinels checks that the sentinels still name server as the master:
// the failover client's dialer asks them at every dial.
func (n *node) askSentinels(ctx context.Context, server string) error {
	cn, err := n.opt.Dialer(ctx, n.opt.Network, n.opt.Addr)
	if err != nil {
		return fmt.Errorf("redis: watch: asking the sentinels for the master: %w", err)
	}
	named := cn.RemoteAddr().String()
	_ = cn.Close()
	if named != server {
		return fmt.Errorf("redis: watch: the sentinels name %s as master, not the tracked %s", named, server)
	}
	return nil
}

// credentials returns the user and password of the client's options, as
// go-redis finds them for a connection of its own.
func credentials(ctx context.Context, o *goredis.Options) (user, pass string, err error) {
	switch {
	case o.StreamingCredentialsProvider != nil:
		creds, unsubscribe, err := o.StreamingCredentialsProvider.Subscribe(noListener{})
		if err != nil {
			return "", "", err
		}
		defer func() { _ = unsubscribe() }()
		user, pass = creds.BasicAuth()
		return user, pass, nil
	case o.CredentialsProviderContext != nil:
		return o.CredentialsProviderContext(ctx)
	case o.CredentialsProvider != nil:
		user, pass = o.CredentialsProvider()
		return user, pass, nil
	}
	return o.Username, o.Password, nil
}

// noListener takes the credentials of a streaming provider once: a
// tracking connection that outlives them is made anew when it breaks.
type noListener struct{}

func (noListener) OnNext(auth.Credentials) {}
func (noListener) OnError(error)           {}
