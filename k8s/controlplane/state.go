package controlplane

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
)

// states records each component's state.
type states struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *states) set(name, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]string{}
	}
	s.m[name] = state
}

// setLive records a probe's finding, unless ctx (the component's run) has
// ended: the state its end recorded stands.
func (s *states) setLive(ctx context.Context, name, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Err() == nil {
		s.m[name] = state
	}
}

// finish records how a component's Run ended.
func (s *states) finish(ctx context.Context, name string, err error) {
	switch {
	case ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)):
		s.set(name, Stopped)
	case err == nil:
		s.set(name, Stopped)
	default:
		s.set(name, "failed: "+err.Error())
	}
}

func (s *states) snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m)
}

// gate is a condition that components wait for (etcd ready, apiserver
// ready); it opens and closes again as its component starts and stops.
type gate struct {
	mu   sync.Mutex
	ch   chan struct{}
	open bool
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.open {
		close(g.ch)
		g.open = true
	}
}

func (g *gate) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open {
		g.ch = make(chan struct{})
		g.open = false
	}
}

// Wait returns once the gate is open, or with ctx's error.
func (g *gate) Wait(ctx context.Context) error {
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
