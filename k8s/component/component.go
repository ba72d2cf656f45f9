// Package component holds what the Kubernetes parts share: the states
// `hepto status` shows, and gates that components wait on.
package component

import (
	"context"
	"errors"
	"maps"
	"sync"
)

// Component states, as `hepto status` shows them; a failure reads
// "failed: REASON".
const (
	Starting = "starting"
	Running  = "running"
	Stopped  = "stopped"
	// Standby: healthy, and waiting for the lease that lets it run (the
	// controller-manager and the scheduler on all but one control-plane
	// node).
	Standby = "standby"
)

// States records each component's state; the zero value is ready.
type States struct {
	mu sync.Mutex
	m  map[string]string
}

// Set records a state.
func (s *States) Set(name, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]string{}
	}
	s.m[name] = state
}

// SetLive records a probe's finding, unless ctx (the component's run) has
// ended: the state its end recorded stands.
func (s *States) SetLive(ctx context.Context, name, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Err() == nil {
		if s.m == nil {
			s.m = map[string]string{}
		}
		s.m[name] = state
	}
}

// Finish records how a component's Run ended.
func (s *States) Finish(ctx context.Context, name string, err error) {
	switch {
	case ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)):
		s.Set(name, Stopped)
	case err == nil:
		s.Set(name, Stopped)
	default:
		s.Set(name, "failed: "+err.Error())
	}
}

// Snapshot is every component's state.
func (s *States) Snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m)
}

// Gate is a condition that components wait for (etcd ready, apiserver
// ready); it opens and closes again as its component starts and stops.
type Gate struct {
	mu   sync.Mutex
	ch   chan struct{}
	open bool
}

// NewGate is a closed gate.
func NewGate() *Gate { return &Gate{ch: make(chan struct{})} }

// Open lets waiters through.
func (g *Gate) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.open {
		close(g.ch)
		g.open = true
	}
}

// Close makes waiters wait again.
func (g *Gate) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open {
		g.ch = make(chan struct{})
		g.open = false
	}
}

// Wait returns once the gate is open, or with ctx's error.
func (g *Gate) Wait(ctx context.Context) error {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
