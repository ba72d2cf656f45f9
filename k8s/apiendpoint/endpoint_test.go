package apiendpoint

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	interval = 150 * time.Millisecond
	// settle bounds how long a change of health takes to be followed: the
	// next round (at most an interval away) and its probes, with room for
	// a loaded machine and the race detector.
	settle = 2*interval + 500*time.Millisecond
)

// testCA is a CA and a serving certificate for 127.0.0.1 it signed.
type testCA struct {
	pool *x509.CertPool
	cert tls.Certificate
}

func newCA(t *testing.T) testCA {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return testCA{pool: pool, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// apiserver stands in for a kube-apiserver: /readyz (toggled), /whoami
// (its name) and /watch (its name, a line every 20ms, until the
// connection ends).
type apiserver struct {
	name   string
	srv    *httptest.Server
	ready  atomic.Bool
	conns  atomic.Int64 // connections opened to it
	probes atomic.Int64 // /readyz requests
	quit   chan struct{}
	once   sync.Once
}

func newAPIServer(t *testing.T, ca testCA, name string) *apiserver {
	t.Helper()
	s := &apiserver{name: name, quit: make(chan struct{})}
	s.ready.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		s.probes.Add(1)
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, s.name)
	})
	mux.HandleFunc("/watch", func(w http.ResponseWriter, r *http.Request) {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := io.WriteString(w, s.name+"\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-s.quit:
				return
			case <-tick.C:
			}
		}
	})
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.cert}}
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.StartTLS()
	t.Cleanup(s.stop)
	return s
}

func (s *apiserver) addr() string { return s.srv.Listener.Addr().String() }

// stop takes the server down entirely: listener and connections.
func (s *apiserver) stop() {
	s.once.Do(func() {
		close(s.quit)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// targetList is a Targets function whose list the test changes.
type targetList struct {
	mu sync.Mutex
	l  []string
}

func (tl *targetList) set(l ...string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.l = l
}

func (tl *targetList) get() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]string(nil), tl.l...)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// start runs an endpoint on a free loopback port until the test ends,
// when Run must return nil.
func start(t *testing.T, o Options) *Endpoint {
	t.Helper()
	e, cancel, errc := startCancel(t, o)
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return once its context ended")
		}
	})
	return e
}

func startCancel(t *testing.T, o Options) (*Endpoint, context.CancelFunc, chan error) {
	t.Helper()
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Interval == 0 {
		o.Interval = interval
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = time.Second
	}
	o.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	select {
	case <-e.listening:
	case err := <-errc:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	if e.URL() == "https://127.0.0.1:0" {
		t.Fatalf("URL() = %s, not the bound address", e.URL())
	}
	return e, cancel, errc
}

// client reaches the apiservers through the endpoint as a kubelet does:
// verifying the apiserver's certificate for 127.0.0.1, a new connection
// for every request.
func client(ca testCA) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:             nil,
		TLSClientConfig:   &tls.Config{RootCAs: ca.pool},
		DisableKeepAlives: true,
	}}
}

func whoami(c *http.Client, e *Endpoint) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.URL()+"/whoami", nil)
	res, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

func mustReach(t *testing.T, c *http.Client, e *Endpoint, want string) {
	t.Helper()
	got, err := whoami(c, e)
	if err != nil {
		t.Fatalf("a request through the endpoint failed (want %s): %v", want, err)
	}
	if got != want {
		t.Fatalf("a new connection reached %s, want %s", got, want)
	}
}

// stream is a long request through the endpoint, as a watch is.
type stream struct {
	from   string // the first line: the server's name
	lines  atomic.Int64
	done   chan struct{} // closed when the stream ends
	cancel context.CancelFunc
}

func openStream(t *testing.T, c *http.Client, e *Endpoint) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &stream{done: make(chan struct{}), cancel: cancel}
	first := make(chan string, 1)
	go func() {
		defer close(s.done)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.URL()+"/watch", nil)
		res, err := c.Do(req)
		if err != nil {
			return
		}
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if s.lines.Add(1) == 1 {
				first <- sc.Text()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-s.done })
	select {
	case s.from = <-first:
	case <-s.done:
		t.Fatal("a stream through the endpoint ended before its first line")
	case <-time.After(5 * time.Second):
		t.Fatal("a stream through the endpoint got no first line")
	}
	return s
}

// close ends the stream from the client's side.
func (s *stream) close() { s.cancel(); <-s.done }

func (s *stream) mustClose(t *testing.T, within time.Duration, why string) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(within):
		t.Fatalf("a stream to %s was not closed within %v (%s)", s.from, within, why)
	}
}

// mustLive checks that the stream is open and still receives.
func (s *stream) mustLive(t *testing.T, why string) {
	t.Helper()
	n := s.lines.Load()
	time.Sleep(3 * interval)
	select {
	case <-s.done:
		t.Fatalf("a stream to %s was closed (%s)", s.from, why)
	default:
	}
	if s.lines.Load() == n {
		t.Fatalf("a stream to %s receives no more (%s)", s.from, why)
	}
}

func eventually(t *testing.T, within time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: "+format, append([]any{within}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustCurrent(t *testing.T, e *Endpoint, want string, within time.Duration) {
	t.Helper()
	eventually(t, within, func() bool { return e.Current() == want }, "Current() = %q, want %q", e.Current(), want)
}

func mustHealthy(t *testing.T, e *Endpoint, want map[string]bool) {
	t.Helper()
	got := e.Healthy()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Healthy() = %v, want %v", got, want)
	}
}

// The endpoint goes to the first target, leaves it when its /readyz fails
// (cutting the connections to it) and comes back to it when it is ready
// again, and cuts those to the other.
func TestFailoverAndBack(t *testing.T) {
	ca := newCA(t)
	a, b := newAPIServer(t, ca, "a"), newAPIServer(t, ca, "b")
	e := start(t, Options{CA: ca.pool, Targets: func() []string { return []string{a.addr(), b.addr()} }})
	c := client(ca)

	mustCurrent(t, e, a.addr(), settle)
	mustHealthy(t, e, map[string]bool{a.addr(): true, b.addr(): true})
	if e.URL() != "https://"+e.addr {
		t.Fatalf("URL() = %s", e.URL())
	}
	mustReach(t, c, e, "a")
	toA := openStream(t, c, e)
	if toA.from != "a" {
		t.Fatalf("a stream reached %s, want a", toA.from)
	}

	a.ready.Store(false)
	mustCurrent(t, e, b.addr(), settle)
	mustHealthy(t, e, map[string]bool{a.addr(): false, b.addr(): true})
	toA.mustClose(t, time.Second, "its target became unhealthy")
	mustReach(t, c, e, "b")
	toB := openStream(t, c, e)
	if toB.from != "b" {
		t.Fatalf("a stream reached %s, want b", toB.from)
	}

	a.ready.Store(true)
	mustCurrent(t, e, a.addr(), settle)
	mustHealthy(t, e, map[string]bool{a.addr(): true, b.addr(): true})
	mustReach(t, c, e, "a")
	toB.mustClose(t, time.Second, "the preferred target came back: connections go back to it")
}

// A target whose listener is down is failed over from at once: the dial
// that fails goes on to the next target and calls a health round without
// waiting for the (here long) interval.
func TestTargetDown(t *testing.T) {
	ca := newCA(t)
	a, b := newAPIServer(t, ca, "a"), newAPIServer(t, ca, "b")
	e := start(t, Options{CA: ca.pool, Interval: time.Hour, Targets: func() []string { return []string{a.addr(), b.addr()} }})
	c := client(ca)

	mustCurrent(t, e, a.addr(), settle)
	toA := openStream(t, c, e)
	if toA.from != "a" {
		t.Fatalf("a stream reached %s, want a", toA.from)
	}
	a.stop()
	toA.mustClose(t, time.Second, "its target went down")
	mustReach(t, c, e, "b")
	mustCurrent(t, e, b.addr(), settle)
	mustHealthy(t, e, map[string]bool{a.addr(): false, b.addr(): true})
	mustReach(t, c, e, "b")
}

// A target that goes down is failed over from by the health rounds alone,
// with no connection to notice it.
func TestTargetDownNoTraffic(t *testing.T) {
	ca := newCA(t)
	a, b := newAPIServer(t, ca, "a"), newAPIServer(t, ca, "b")
	e := start(t, Options{CA: ca.pool, Targets: func() []string { return []string{a.addr(), b.addr()} }})
	mustCurrent(t, e, a.addr(), settle)
	a.stop()
	mustCurrent(t, e, b.addr(), settle)
	mustHealthy(t, e, map[string]bool{a.addr(): false, b.addr(): true})
	mustReach(t, client(ca), e, "b")
}

// The endpoint follows Targets: a removed target is left and its
// connections cut; a new preferred target takes new connections while
// those to a target still listed and healthy stay.
func TestTargetsChange(t *testing.T) {
	ca := newCA(t)
	a, b, cc := newAPIServer(t, ca, "a"), newAPIServer(t, ca, "b"), newAPIServer(t, ca, "c")
	var tl targetList
	tl.set(a.addr(), b.addr())
	e := start(t, Options{CA: ca.pool, Targets: tl.get})
	c := client(ca)

	mustCurrent(t, e, a.addr(), settle)
	toA := openStream(t, c, e)
	if toA.from != "a" {
		t.Fatalf("a stream reached %s, want a", toA.from)
	}

	tl.set(b.addr(), cc.addr())
	mustCurrent(t, e, b.addr(), settle)
	mustHealthy(t, e, map[string]bool{b.addr(): true, cc.addr(): true})
	toA.mustClose(t, time.Second, "its target was removed")
	mustReach(t, c, e, "b")
	toB := openStream(t, c, e)

	tl.set(cc.addr(), b.addr())
	mustCurrent(t, e, cc.addr(), settle)
	mustReach(t, c, e, "c")
	toB.mustClose(t, time.Second, "a target preferred to its own is current")
}

// With no target healthy, each new connection still tries the targets in
// order, and the connections made are not cut for want of a better place.
func TestNoneHealthy(t *testing.T) {
	ca := newCA(t)
	a, b := newAPIServer(t, ca, "a"), newAPIServer(t, ca, "b")
	a.ready.Store(false)
	b.ready.Store(false)
	e := start(t, Options{CA: ca.pool, Targets: func() []string { return []string{a.addr(), b.addr()} }})
	c := client(ca)

	eventually(t, settle, func() bool { return len(e.Healthy()) == 2 }, "no health round")
	mustHealthy(t, e, map[string]bool{a.addr(): false, b.addr(): false})
	if cur := e.Current(); cur != "" {
		t.Fatalf("Current() = %q with no target healthy", cur)
	}
	mustReach(t, c, e, "a")
	toA := openStream(t, c, e)
	toA.mustLive(t, "no target is healthy: there is nowhere better")

	a.stop()
	toA.mustClose(t, time.Second, "its target went down")
	mustReach(t, c, e, "b")
	if cur := e.Current(); cur != "" {
		t.Fatalf("Current() = %q with no target healthy", cur)
	}

	b.ready.Store(true)
	mustCurrent(t, e, b.addr(), settle)
	mustReach(t, c, e, "b")
}

// The probes keep their connection between rounds: a round costs a
// request, not a TLS handshake.
func TestProbeKeepsConnection(t *testing.T) {
	ca := newCA(t)
	a := newAPIServer(t, ca, "a")
	e := start(t, Options{CA: ca.pool, Targets: func() []string { return []string{a.addr()} }})
	mustCurrent(t, e, a.addr(), settle)
	time.Sleep(5 * interval)
	if n := a.conns.Load(); n != 1 {
		t.Fatalf("%d connections for the probes of 6 rounds or so; want 1", n)
	}
}

// A target whose certificate the CA did not sign is not healthy.
// TestQuietRounds: while the preferred target is current, the others are
// probed only every FullInterval; when it fails, at once.
func TestQuietRounds(t *testing.T) {
	ca := newCA(t)
	a, b := newAPIServer(t, ca, "a"), newAPIServer(t, ca, "b")
	e := start(t, Options{CA: ca.pool, FullInterval: time.Hour, Targets: func() []string { return []string{a.addr(), b.addr()} }})
	mustCurrent(t, e, a.addr(), settle)
	pa, pb := a.probes.Load(), b.probes.Load()
	time.Sleep(5 * interval)
	if n := a.probes.Load() - pa; n < 3 {
		t.Errorf("the current target probed %d times in 5 rounds", n)
	}
	if n := b.probes.Load() - pb; n != 0 {
		t.Errorf("a target after the current one probed %d times in 5 rounds, want none before the full round", n)
	}
	mustHealthy(t, e, map[string]bool{a.addr(): true, b.addr(): true})
	a.ready.Store(false)
	mustCurrent(t, e, b.addr(), settle)
	if b.probes.Load() == pb {
		t.Error("b became current without a probe")
	}
}

func TestUntrustedTarget(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	a, b := newAPIServer(t, other, "a"), newAPIServer(t, ca, "b")
	e := start(t, Options{CA: ca.pool, Targets: func() []string { return []string{a.addr(), b.addr()} }})
	mustCurrent(t, e, b.addr(), settle)
	mustHealthy(t, e, map[string]bool{a.addr(): false, b.addr(): true})
}

// Run fails plainly when its port is taken.
func TestListenTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ca := newCA(t)
	e, err := New(Options{Listen: ln.Addr().String(), CA: ca.pool, Targets: func() []string { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- e.Run(context.Background()) }()
	select {
	case err := <-errc:
		if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), ln.Addr().String()) {
			t.Fatalf("Run on a taken port: %v; want an error naming the address, wrapping EADDRINUSE", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run on a taken port did not return")
	}
}

// When its context ends, Run closes the listener and every proxied
// connection and returns nil.
func TestStop(t *testing.T) {
	ca := newCA(t)
	a := newAPIServer(t, ca, "a")
	e, cancel, errc := startCancel(t, Options{CA: ca.pool, Targets: func() []string { return []string{a.addr()} }})
	defer cancel()
	c := client(ca)
	mustCurrent(t, e, a.addr(), settle)
	s := openStream(t, c, e)

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run returned %v once its context ended; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return once its context ended")
	}
	s.mustClose(t, time.Second, "Run returned")
	if conn, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		conn.Close()
		t.Fatal("the endpoint still accepts connections after Run returned")
	}
}

// Connections beyond MaxConns are closed; room made is taken again.
func TestMaxConns(t *testing.T) {
	ca := newCA(t)
	a := newAPIServer(t, ca, "a")
	e := start(t, Options{CA: ca.pool, MaxConns: 2, Targets: func() []string { return []string{a.addr()} }})
	c := client(ca)
	mustCurrent(t, e, a.addr(), settle)

	s1 := openStream(t, c, e)
	openStream(t, c, e)
	if _, err := whoami(c, e); err == nil {
		t.Fatal("a third connection was served with MaxConns 2")
	}
	s1.close()
	eventually(t, settle, func() bool { _, err := whoami(c, e); return err == nil }, "no connection served once one of two ended")
}

func TestNewChecks(t *testing.T) {
	ca := newCA(t)
	targets := func() []string { return nil }
	for _, o := range []Options{
		{CA: ca.pool, Targets: targets},
		{Listen: "127.0.0.1:0", CA: ca.pool},
		{Listen: "127.0.0.1:0", Targets: targets},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) took incomplete options", o)
		}
	}
	e, err := New(Options{Listen: "127.0.0.1:6444", CA: ca.pool, Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	if e.o.Interval != DefaultInterval || e.o.FullInterval != DefaultFullInterval || e.o.DialTimeout != DefaultDialTimeout || e.o.MaxConns != DefaultMaxConns || e.log == nil {
		t.Errorf("defaults not set: %+v", e.o)
	}
	if e.URL() != "https://127.0.0.1:6444" {
		t.Errorf("URL() = %s", e.URL())
	}
}

func TestDialOrder(t *testing.T) {
	e := &Endpoint{targets: []string{"a", "b", "c", "d"}, healthy: map[string]bool{"a": false, "b": true, "c": false, "d": true}, current: "b"}
	if got := fmt.Sprint(e.dialOrder()); got != "[b d a c]" {
		t.Errorf("dial order %s, want current, other healthy, then the rest", got)
	}
	if got := fmt.Sprint(dedup([]string{"a", "", "b", "a"})); got != "[a b]" {
		t.Errorf("dedup: %s", got)
	}
}
