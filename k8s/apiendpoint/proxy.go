package apiendpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// pipe is one proxied connection: a client's and the target's ends.
type pipe struct {
	client, upstream net.Conn
	target           string
	once             sync.Once
}

// close closes both ends, which ends both copies.
func (p *pipe) close() {
	p.once.Do(func() {
		p.client.Close()
		p.upstream.Close()
	})
}

// accept serves ln until it fails; a temporary failure (such as too many
// open files) is waited out, as net/http does.
func (e *Endpoint) accept(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) error {
	var backoff time.Duration
	full := false // logged that the cap was reached, until a connection fits again
	sem := make(chan struct{}, e.o.MaxConns)
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne interface{ Temporary() bool }
			if ctx.Err() == nil && errors.As(err, &ne) && ne.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				e.log.Warn("accepting a connection", "err", err, "retry", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-ctx.Done():
				}
			}
			return err
		}
		backoff = 0
		select {
		case sem <- struct{}{}:
			full = false
		default:
			// Bounded: a client looping on connections cannot take all
			// the node's file descriptors.
			if !full {
				e.log.Warn("too many connections to the apiserver endpoint; closing new ones", "max", e.o.MaxConns)
				full = true
			}
			c.Close()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			e.serve(ctx, c)
		})
	}
}

// serve proxies c to the first target that answers a dial.
func (e *Endpoint) serve(ctx context.Context, c net.Conn) {
	up, target, err := e.dial(ctx)
	if err != nil {
		c.Close()
		if ctx.Err() == nil {
			e.log.Warn("no apiserver to pass a connection to", "err", err)
		}
		return
	}
	p := &pipe{client: c, upstream: up, target: target}
	if !e.track(p) {
		p.close()
		return
	}
	defer e.untrack(p)

	// Either direction ending closes both: TLS and HTTP do not use
	// half-closed connections, and this way no copy waits on a peer
	// that never closes.
	done := make(chan struct{})
	go func() {
		io.Copy(up, c)
		p.close()
		close(done)
	}()
	io.Copy(c, up)
	p.close()
	<-done
}

// dial tries the targets in turn; a failure to dial the current one asks
// for a health round at once.
func (e *Endpoint) dial(ctx context.Context) (net.Conn, string, error) {
	order := e.dialOrder()
	if len(order) == 0 {
		return nil, "", errors.New("no apiserver known")
	}
	current := e.Current()
	var errs []error
	for _, t := range order {
		up, err := e.dialer.DialContext(ctx, "tcp", t)
		if err == nil {
			return up, t, nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		errs = append(errs, fmt.Errorf("dial %s: %w", t, err))
		if t == current {
			e.log.Info("dialling the current apiserver failed; checking them", "target", t, "err", err)
			e.recheck()
		}
	}
	return nil, "", errors.Join(errs...)
}

// track registers p so that it can be cut, unless Run is returning.
func (e *Endpoint) track(p *pipe) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		return false
	}
	e.conns[p] = struct{}{}
	return true
}

func (e *Endpoint) untrack(p *pipe) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.conns, p)
}

// closeAll closes every proxied connection, for good.
func (e *Endpoint) closeAll() {
	e.mu.Lock()
	e.stopping = true
	all := make([]*pipe, 0, len(e.conns))
	for p := range e.conns {
		all = append(all, p)
	}
	e.mu.Unlock()
	for _, p := range all {
		p.close()
	}
}
