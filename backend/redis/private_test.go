package redis_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/conformance"
	"github.com/kvmap/kv/kvurl"
	"github.com/kvmap/kv/nearcache"
)

// The tests of this file start private redis-servers on ports of their own,
// never touching the shared one. They run when KV_REDIS_PRIVATE=1 and fail,
// not skip, when a server cannot start.

func private(t *testing.T) {
	t.Helper()
	if os.Getenv("KV_REDIS_PRIVATE") != "1" {
		t.Skip("KV_REDIS_PRIVATE is not 1")
	}
}

// server is a private redis-server process.
type server struct {
	t    *testing.T
	port int
	args []string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer starts redis-server on a free port. tlsPort makes the port a
// TLS port; conf lines go into its configuration file, args on its command
// line.
func startServer(t *testing.T, tlsPort bool, conf []string, args ...string) *server {
	t.Helper()
	s := &server{t: t, port: freePort(t)}
	dir := t.TempDir()
	confFile := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(confFile, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	portArgs := []string{confFile, "--port", strconv.Itoa(s.port)}
	if tlsPort {
		portArgs = []string{confFile, "--port", "0", "--tls-port", strconv.Itoa(s.port)}
	}
	s.args = append(append(portArgs, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir), args...)
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *server) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *server) start() {
	s.t.Helper()
	var out bytes.Buffer
	s.cmd = exec.Command("redis-server", s.args...)
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr(), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		exited := false
		select {
		case <-s.done:
			exited = true
		default:
		}
		if exited || time.Now().After(deadline) {
			s.kill()
			s.t.Fatalf("redis-server %v did not listen within 10s: %v\n%s", s.args, err, out.String())
		}
		time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline
	}
}

func (s *server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
		_ = s.cmd.Process.Kill()
		<-s.done
		s.cmd = nil
	}
}

func TestACLUser(t *testing.T) {
	private(t)
	const password = "pa55-w0rd-kv"
	s := startServer(t, false, []string{"user kvuser on >" + password + " ~* &* +@all", "user default off"})
	c := goredis.NewClient(&goredis.Options{Addr: s.addr(), Username: "kvuser", Password: password, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	conformance.Run(t, realHarness(c))

	t.Run("WrongPasswordNotLeaked", func(t *testing.T) {
		const wrong = "wrong-s3cret-value"
		bad := goredis.NewClient(&goredis.Options{Addr: s.addr(), Username: "kvuser", Password: wrong, ContextTimeoutEnabled: true, MaxRetries: -1})
		t.Cleanup(func() { _ = bad.Close() })
		var logs bytes.Buffer
		b := mustRedis(t, bad)
		m := mustNew[string](t, b, "acl", kv.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		_, _, err := m.Get(context.Background(), "k")
		if err == nil {
			t.Fatalf("Get with a wrong password succeeded")
		}
		for _, secret := range []string{wrong, password} {
			if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
				t.Errorf("a password appears in the error %q or the log %q", err, logs.String())
			}
		}
	})
}

func TestRequirePass(t *testing.T) {
	private(t)
	s := startServer(t, false, nil, "--requirepass", "hunter2-kv")
	c := goredis.NewClient(&goredis.Options{Addr: s.addr(), Password: "hunter2-kv", ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	b := mustRedis(t, c)
	m := mustNew[string](t, b, "auth")
	ctx := context.Background()
	if err := m.Set(ctx, "k", "v"); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if v, ok, err := m.Get(ctx, "k"); err != nil || !ok || v != "v" {
		t.Errorf("Get = %q, %v, %v; want v", v, ok, err)
	}
	noAuth := goredis.NewClient(&goredis.Options{Addr: s.addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = noAuth.Close() })
	nb := mustRedis(t, noAuth)
	nm := mustNew[string](t, nb, "auth")
	if _, _, err := nm.Get(ctx, "k"); err == nil || strings.Contains(err.Error(), "hunter2-kv") {
		t.Errorf("Get without a password = %v; want an error that does not name the password", err)
	}
}

func TestTLS(t *testing.T) {
	private(t)
	dir := t.TempDir()
	caPool := writeCerts(t, dir)
	s := startServer(t, true, nil,
		"--tls-cert-file", filepath.Join(dir, "server.pem"),
		"--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"),
		"--tls-auth-clients", "no")
	c := goredis.NewClient(&goredis.Options{
		Addr: s.addr(), ContextTimeoutEnabled: true,
		TLSConfig: &tls.Config{RootCAs: caPool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
	})
	t.Cleanup(func() { _ = c.Close() })
	conformance.Run(t, realHarness(c))

	t.Run("UntrustedCertificateRefused", func(t *testing.T) {
		plain := goredis.NewClient(&goredis.Options{Addr: s.addr(), ContextTimeoutEnabled: true, MaxRetries: -1,
			TLSConfig: &tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}})
		t.Cleanup(func() { _ = plain.Close() })
		b := mustRedis(t, plain)
		m := mustNew[string](t, b, "tls")
		if _, _, err := m.Get(context.Background(), "k"); err == nil {
			t.Errorf("Get over TLS with an untrusted certificate succeeded")
		}
	})
}

// writeCerts writes a throwaway CA and a server certificate for 127.0.0.1
// into dir, and returns a pool holding the CA.
func writeCerts(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kv test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	write("server.pem", "CERTIFICATE", srvDER)
	write("server.key", "EC PRIVATE KEY", keyDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}

// TestServerKilledDuringIteration: an iteration whose server dies yields an
// error, never ends as if complete; once a server is back on the port, the
// same Map works without being rebuilt.
func TestServerKilledDuringIteration(t *testing.T) {
	private(t)
	s := startServer(t, false, nil)
	c := goredis.NewClient(&goredis.Options{Addr: s.addr(), ContextTimeoutEnabled: true,
		DialTimeout: 200 * time.Millisecond, MaxRetries: 1})
	t.Cleanup(func() { _ = c.Close() })
	b := mustRedis(t, c)
	m := mustNew[string](t, b, "fault", kv.WithPageSize(100))
	fillRaw(t, c, "fault", 5000)
	ctx := context.Background()

	n, errs := 0, 0
	for _, err := range m.Iterate(ctx) {
		if err != nil {
			errs++
			continue
		}
		n++
		if n == 10 {
			s.kill()
		}
	}
	if errs != 1 || n >= 5000 {
		t.Errorf("iteration over a killed server: %d entries and %d errors; want fewer than 5000 and 1 error", n, errs)
	}

	s.start()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = m.Set(ctx, "back", "v"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline
	}
	if err != nil {
		t.Fatalf("Set after the server came back: %v", err)
	}
	if v, ok, err := m.Get(ctx, "back"); err != nil || !ok || v != "v" {
		t.Errorf("Get after the server came back = %q, %v, %v", v, ok, err)
	}
}

// TestDeadlineBoundsStuckServer: a context deadline bounds every call against
// a server that stopped answering, paused (CLIENT PAUSE) or stopped (SIGSTOP).
func TestDeadlineBoundsStuckServer(t *testing.T) {
	private(t)
	s := startServer(t, false, nil)
	c := goredis.NewClient(&goredis.Options{Addr: s.addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	b := mustRedis(t, c)
	m := mustNew[string](t, b, "stuck")
	ctx := context.Background()
	if err := m.Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func(ctx context.Context) error{
		"Get":     func(ctx context.Context) error { _, _, err := m.Get(ctx, "k"); return err },
		"Set":     func(ctx context.Context) error { return m.Set(ctx, "k", "v") },
		"Size":    func(ctx context.Context) error { _, err := m.Size(ctx); return err },
		"ToArray": func(ctx context.Context) error { _, err := m.ToArray(ctx); return err },
		"Clear":   func(ctx context.Context) error { return m.Clear(ctx) },
		// Pipelined calls used to fail with an i/o timeout here.
		"SetMany": func(ctx context.Context) error {
			return m.SetMany(ctx, []kv.Entry[string]{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}})
		},
		"ExpireNoTTL": func(ctx context.Context) error { _, err := m.Expire(ctx, "k", kv.NoTTL); return err },
	}
	stuck := func(name string, pause, resume func()) {
		pause()
		defer resume()
		for op, call := range calls {
			cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			done := make(chan error, 1)
			go func() { done <- call(cctx) }()
			select {
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s: %s = %v; want context.DeadlineExceeded", name, op, err)
				}
			case <-time.After(30 * time.Second): // a hang, not a timing assertion
				t.Errorf("%s: %s still running 30s after its 300ms deadline", name, op)
			}
			cancel()
		}
	}
	admin := goredis.NewClient(&goredis.Options{Addr: s.addr()})
	t.Cleanup(func() { _ = admin.Close() })
	stuck("CLIENT PAUSE",
		func() {
			if err := admin.Do(ctx, "CLIENT", "PAUSE", "4000", "ALL").Err(); err != nil {
				t.Fatal(err)
			}
		},
		func() {}) // the pause ends by itself; UNPAUSE would wait behind it
	stuck("SIGSTOP",
		func() { _ = s.cmd.Process.Signal(syscall.SIGSTOP) },
		func() { _ = s.cmd.Process.Signal(syscall.SIGCONT) })
}

// TestSentinel runs the suite through a Sentinel: a master, a sentinel that
// monitors it, and go-redis's failover client (a *redis.Client), as kvurl's
// redis+sentinel:// URLs make it.
func TestSentinel(t *testing.T) {
	private(t)
	master := startServer(t, false, nil)
	sentinel := startServer(t, false, []string{
		"sentinel monitor kvmaster 127.0.0.1 " + strconv.Itoa(master.port) + " 1",
		"sentinel down-after-milliseconds kvmaster 5000",
	}, "--sentinel")
	c := goredis.NewFailoverClient(&goredis.FailoverOptions{
		MasterName: "kvmaster", SentinelAddrs: []string{sentinel.addr()}, ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = c.Close() })
	// The sentinel answers as soon as it listens; wait until it names the
	// master.
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("no master through the sentinel at %s", sentinel.addr())
		}
		time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline
	}
	conformance.Run(t, realHarness(c))
	t.Run("NearCache", func(t *testing.T) {
		h := realHarness(c)
		h.Options = []kv.Option{kv.WithNearCache(nearcache.Options{})}
		conformance.Run(t, h)
	})

	t.Run("URL", func(t *testing.T) {
		b, err := kvurl.Open("redis+sentinel://"+sentinel.addr()+"?master=kvmaster", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		m := mustNew[string](t, b, "sentinel_url")
		ctx := context.Background()
		if err := m.Set(ctx, "k", "v"); err != nil {
			t.Fatalf("Set through redis+sentinel://: %v", err)
		}
		if v, ok, err := m.Get(ctx, "k"); err != nil || !ok || v != "v" {
			t.Errorf("Get through redis+sentinel:// = %q, %v, %v", v, ok, err)
		}
		_ = m.Clear(ctx)
	})
}
