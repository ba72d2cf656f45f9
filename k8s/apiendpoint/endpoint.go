// Package apiendpoint is the node-local endpoint through which a node's
// kubelet, kube-proxy and hepto's own clients reach a kube-apiserver.
//
// Several nodes run an apiserver and there is no load balancer nor
// virtual IP in front of them, so every node listens on loopback and
// passes each TCP connection, TLS untouched, to one apiserver it has
// found ready: its own when it has one, else the next in a preferred
// order. When that apiserver stops answering /readyz the endpoint moves to
// the next one and cuts the connections to the old, so that long watches
// reconnect rather than hang on a dead peer.
package apiendpoint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultInterval     = 10 * time.Second
	DefaultFullInterval = time.Minute
	DefaultDialTimeout  = 3 * time.Second
	DefaultMaxConns     = 512
)

// Options configure an Endpoint.
type Options struct {
	Listen string // TCP address to listen on, e.g. "127.0.0.1:6444"
	// Targets returns the "host:port" of each apiserver, preferred first
	// (the node's own apiserver first when it has one). It is called again
	// at every health round, so the set may change.
	Targets func() []string
	// CA verifies the apiservers' certificates when probing /readyz; the
	// name checked is the target's host, which their certificates carry.
	CA       *x509.CertPool
	Interval time.Duration // period of the health rounds; DefaultInterval if 0
	// FullInterval is how often the targets after the current one are
	// probed too (DefaultFullInterval if 0); each round probes the current
	// target and those preferred to it, and all of them when it fails.
	FullInterval time.Duration
	DialTimeout  time.Duration // bounds a dial and a probe; DefaultDialTimeout if 0
	MaxConns     int           // proxied connections at once, beyond which new ones are closed; DefaultMaxConns if 0
	Logger       *slog.Logger
}

// Endpoint is a node-local apiserver endpoint. Make one with New and
// serve it with Run, once.
type Endpoint struct {
	o      Options
	log    *slog.Logger
	client *http.Client  // probes /readyz; keeps its connections between rounds
	dialer net.Dialer    // dials the targets for proxied connections
	kick   chan struct{} // asks for a health round now (a dial to the current target failed)

	mu       sync.Mutex
	addr     string          // the bound address once listening
	targets  []string        // as read at the last round, deduplicated
	healthy  map[string]bool // last probe result per target
	current  string          // first healthy target; "" if none
	conns    map[*pipe]struct{}
	stopping bool // Run is returning: no new pipes

	ran       atomic.Bool
	listening chan struct{} // closed once Run listens (for tests)
}

// New checks o and returns an Endpoint.
func New(o Options) (*Endpoint, error) {
	if o.Listen == "" {
		return nil, errors.New("apiendpoint: no listen address")
	}
	if o.Targets == nil {
		return nil, errors.New("apiendpoint: no targets")
	}
	if o.CA == nil {
		return nil, errors.New("apiendpoint: no CA to verify the apiservers with")
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.FullInterval <= 0 {
		o.FullInterval = DefaultFullInterval
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	e := &Endpoint{
		o: o, log: o.Logger,
		// No TCP keepalives on the overlay: the health rounds find a dead
		// apiserver, and an idle link stays quiet.
		dialer:    net.Dialer{Timeout: o.DialTimeout, KeepAlive: -1},
		kick:      make(chan struct{}, 1),
		healthy:   map[string]bool{},
		conns:     map[*pipe]struct{}{},
		listening: make(chan struct{}),
	}
	e.client = &http.Client{Transport: &http.Transport{
		Proxy:               nil, // never through an HTTP proxy from the environment
		DialContext:         (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: -1}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: o.CA, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: o.DialTimeout,
		MaxIdleConnsPerHost: 1,
		// Kept from one probe of a target to the next, so that a probe
		// costs a request, not a TLS handshake.
		IdleConnTimeout: o.FullInterval + 2*o.Interval,
	}}
	return e, nil
}

// Run listens on Options.Listen and proxies each connection to the
// current target until ctx ends, when it closes the listener and every
// proxied connection and returns nil. It returns an error if it cannot
// listen or the listener fails.
func (e *Endpoint) Run(ctx context.Context) error {
	if !e.ran.CompareAndSwap(false, true) {
		return errors.New("apiendpoint: Run called twice")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", e.o.Listen)
	if err != nil {
		return fmt.Errorf("apiendpoint: listen on %s: %w", e.o.Listen, err)
	}
	e.mu.Lock()
	e.addr = ln.Addr().String()
	e.mu.Unlock()
	close(e.listening)
	e.log.Info("apiserver endpoint listening", "addr", ln.Addr().String())

	ctx, cancel := context.WithCancel(ctx)
	context.AfterFunc(ctx, func() { ln.Close() }) // ends Accept
	var wg sync.WaitGroup
	defer func() {
		cancel()
		ln.Close()
		e.closeAll()
		wg.Wait()
		e.client.CloseIdleConnections()
	}()

	// A first round before accepting, so that the first connections go to
	// the preferred healthy target; they wait in the backlog meanwhile.
	e.round(ctx, true)
	wg.Go(func() { e.watch(ctx) })
	err = e.accept(ctx, ln, &wg)
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("apiendpoint: accept on %s: %w", ln.Addr(), err)
}

// Current returns the target new connections go to: the first healthy
// one, or "" if none is healthy.
func (e *Endpoint) Current() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.current
}

// Healthy returns the result of the last probe of each target.
func (e *Endpoint) Healthy() map[string]bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := make(map[string]bool, len(e.healthy))
	for t, ok := range e.healthy {
		h[t] = ok
	}
	return h
}

// URL returns the endpoint's URL for clients: the bound address once Run
// listens, Options.Listen before.
func (e *Endpoint) URL() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.addr != "" {
		return "https://" + e.addr
	}
	return "https://" + e.o.Listen
}
