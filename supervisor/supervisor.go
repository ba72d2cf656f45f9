// Package supervisor runs a node's long-lived parts as services: it starts
// them in order, restarts one that fails with back-off, and stops them all
// within a bounded time. A failure at start, the end of a critical
// service, or a Fatal error of any service, stops the supervisor with that
// error.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Service is a long-lived part of a node. Run returns when ctx is done, or
// with an error when the service fails; a nil return before ctx is done
// means there is nothing (more) to do.
type Service interface {
	Name() string
	Run(ctx context.Context) error
}

// Starter is a service with a set-up step, such as opening its sockets.
// Start runs before Run, each time the service is (re)started, with the
// context Run then gets; an error at the supervisor's start is fatal.
type Starter interface {
	Start(ctx context.Context) error
}

// Fatal marks a service's error as the end of the node: the supervisor
// does not restart the service, stops the others and returns the error,
// whether the service was added as critical or not. It is for a part that
// may fail to start without stopping the node, but cannot run again in
// this process once it ran (the kubelet, kube-proxy).
func Fatal(err error) error {
	if err == nil {
		err = errors.New("stopped")
	}
	return fatalError{err}
}

type fatalError struct{ err error }

func (f fatalError) Error() string { return f.err.Error() }
func (f fatalError) Unwrap() error { return f.err }

// IsFatal tells whether err was marked by Fatal.
func IsFatal(err error) bool { return errors.As(err, new(fatalError)) }

// Func makes a Service of a function.
func Func(name string, run func(ctx context.Context) error) Service { return funcService{name, run} }

type funcService struct {
	name string
	run  func(context.Context) error
}

func (f funcService) Name() string                  { return f.name }
func (f funcService) Run(ctx context.Context) error { return f.run(ctx) }

// States of a service, as status shows them.
const (
	Starting = "starting"
	Running  = "running"
	Done     = "done" // returned nil: nothing to do
	Stopped  = "stopped"
)

// State is where a service stands: Starting, Running, Done, Stopped, or
// "failed: REASON" while it waits to be restarted.
type State struct {
	Name     string    `json:"name"`
	State    string    `json:"state"`
	Restarts int       `json:"restarts"`
	Since    time.Time `json:"since"`
}

// Timings of restarts and of the stop.
const (
	firstBackoff = time.Second
	maxBackoff   = time.Minute
	// A service that ran this long before failing starts again at once.
	stableAfter = time.Minute
	// StopTimeout bounds the wait for services to return once cancelled.
	StopTimeout = 4 * time.Second
)

// Supervisor runs services. Add them, then Run.
type Supervisor struct {
	log *slog.Logger

	mu      sync.Mutex
	entries []*entry
}

type entry struct {
	svc      Service
	critical bool
	state    State
}

// New returns a supervisor that logs with log.
func New(log *slog.Logger) *Supervisor {
	if log == nil {
		log = slog.Default()
	}
	return &Supervisor{log: log}
}

// Add registers a service; services start in the order they were added. A
// critical service is not restarted: its end stops the supervisor.
func (s *Supervisor) Add(svc Service, critical bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append(s.entries, &entry{svc: svc, critical: critical, state: State{Name: svc.Name(), State: Starting, Since: time.Now()}})
}

// States returns every service's state, in start order.
func (s *Supervisor) States() []State {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]State, len(s.entries))
	for i, e := range s.entries {
		out[i] = e.state
	}
	return out
}

func (s *Supervisor) set(e *entry, state string, restarted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.state.State, e.state.Since = state, time.Now()
	if restarted {
		e.state.Restarts++
	}
}

// Run starts the services, in order, and supervises them until ctx is
// done or one fails fatally. Then it cancels every service and waits for
// them, StopTimeout at most. It returns the fatal error, or nil.
func (s *Supervisor) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	entries := append([]*entry(nil), s.entries...)
	s.mu.Unlock()

	fatal := make(chan error, len(entries))
	var wg sync.WaitGroup
	var startErr error
	for i, e := range entries {
		if st, ok := e.svc.(Starter); ok {
			if err := st.Start(ctx); err != nil {
				s.set(e, "failed: "+err.Error(), false)
				for _, later := range entries[i+1:] {
					s.set(later, Stopped, false)
				}
				startErr = fmt.Errorf("%s: %w", e.svc.Name(), err)
				break
			}
		}
		s.set(e, Running, false)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.supervise(ctx, e, fatal)
		}()
	}

	err := startErr
	if err == nil {
		select {
		case <-ctx.Done():
		case err = <-fatal:
		}
	}
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(StopTimeout):
		s.log.Warn("services did not stop in time", "services", s.notStopped())
	}
	return err
}

// supervise runs one started service until ctx is done, restarting it
// with back-off when it fails.
func (s *Supervisor) supervise(ctx context.Context, e *entry, fatal chan<- error) {
	name := e.svc.Name()
	backoff := firstBackoff
	for {
		began := time.Now()
		err := e.svc.Run(ctx)
		switch {
		case ctx.Err() != nil:
			s.set(e, Stopped, false)
			return
		case e.critical || IsFatal(err):
			if err == nil {
				err = errors.New("stopped")
			}
			s.set(e, "failed: "+err.Error(), false)
			fatal <- fmt.Errorf("%s: %w", name, err)
			return
		case err == nil:
			s.set(e, Done, false)
			return
		}
		if time.Since(began) > stableAfter {
			backoff = firstBackoff
		}
		s.log.Error("service failed; restarting", "service", name, "err", err, "in", backoff)
		s.set(e, "failed: "+err.Error(), false)
		for {
			select {
			case <-ctx.Done():
				s.set(e, Stopped, false)
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			st, ok := e.svc.(Starter)
			if !ok {
				break
			}
			if err := st.Start(ctx); err != nil {
				s.log.Error("service failed to start; retrying", "service", name, "err", err, "in", backoff)
				s.set(e, "failed: "+err.Error(), false)
				continue
			}
			break
		}
		s.set(e, Running, true)
	}
}

// notStopped names the services still in Run.
func (s *Supervisor) notStopped() []string {
	var out []string
	for _, st := range s.States() {
		if st.State == Running {
			out = append(out, st.Name)
		}
	}
	return out
}
