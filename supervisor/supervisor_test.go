package supervisor

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// svc is a service whose behaviour each test sets.
type svc struct {
	name  string
	start func(ctx context.Context) error
	run   func(ctx context.Context) error
	runs  atomic.Int32
}

func (s *svc) Name() string { return s.name }
func (s *svc) Start(ctx context.Context) error {
	if s.start == nil {
		return nil
	}
	return s.start(ctx)
}
func (s *svc) Run(ctx context.Context) error {
	s.runs.Add(1)
	if s.run == nil {
		<-ctx.Done()
		return nil
	}
	return s.run(ctx)
}

func runAsync(s *Supervisor, ctx context.Context) <-chan error {
	c := make(chan error, 1)
	go func() { c <- s.Run(ctx) }()
	return c
}

func wait(t *testing.T, c <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(within):
		t.Fatalf("supervisor did not return within %s", within)
		return nil
	}
}

func TestStartFailureStopsEverything(t *testing.T) {
	s := New(nil)
	first := &svc{name: "first"}
	bad := &svc{name: "metrics", start: func(context.Context) error { return errors.New("address already in use") }}
	never := &svc{name: "never"}
	s.Add(first, false)
	s.Add(bad, false)
	s.Add(never, false)
	err := wait(t, runAsync(s, context.Background()), 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "metrics: address already in use") {
		t.Fatalf("err = %v, want the start failure, named", err)
	}
	if never.runs.Load() != 0 {
		t.Error("a service after the failed one was started")
	}
	if first.runs.Load() != 1 {
		t.Error("the first service did not run")
	}
	if st := s.States(); st[0].State != Stopped || !strings.HasPrefix(st[1].State, "failed: ") {
		t.Errorf("states = %+v", st)
	}
}

func TestLaterFailureRestartsWithState(t *testing.T) {
	s := New(nil)
	failed := make(chan struct{})
	dns := &svc{name: "dns"}
	dns.run = func(ctx context.Context) error {
		if dns.runs.Load() == 1 {
			close(failed)
			return errors.New("socket closed")
		}
		<-ctx.Done()
		return nil
	}
	s.Add(dns, false)
	ctx, cancel := context.WithCancel(context.Background())
	c := runAsync(s, ctx)
	<-failed
	time.Sleep(100 * time.Millisecond)
	if st := s.States()[0]; st.State != "failed: socket closed" {
		t.Errorf("during back-off: state %q", st.State)
	}
	deadline := time.Now().Add(3 * time.Second)
	for dns.runs.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if st := s.States()[0]; st.State != Running || st.Restarts != 1 {
		t.Errorf("after restart: %+v", st)
	}
	cancel()
	if err := wait(t, c, time.Second); err != nil {
		t.Errorf("clean stop returned %v", err)
	}
}

func TestCriticalEndIsFatal(t *testing.T) {
	s := New(nil)
	tunnelDead := make(chan struct{})
	s.Add(&svc{name: "tunnel", run: func(ctx context.Context) error {
		select {
		case <-tunnelDead:
			return errors.New("WireGuard device closed")
		case <-ctx.Done():
			return nil
		}
	}}, true)
	other := &svc{name: "dns"}
	s.Add(other, false)
	c := runAsync(s, context.Background())
	close(tunnelDead)
	err := wait(t, c, time.Second)
	if err == nil || !strings.Contains(err.Error(), "tunnel: WireGuard device closed") {
		t.Fatalf("err = %v", err)
	}
	if st := s.States()[1]; st.State != Stopped {
		t.Errorf("other service: %+v", st)
	}
}

func TestStopIsBounded(t *testing.T) {
	s := New(nil)
	s.Add(&svc{name: "stuck", run: func(context.Context) error { select {} }}, false)
	ctx, cancel := context.WithCancel(context.Background())
	c := runAsync(s, ctx)
	time.Sleep(50 * time.Millisecond)
	cancel()
	begin := time.Now()
	if err := wait(t, c, StopTimeout+2*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d < StopTimeout-100*time.Millisecond {
		t.Errorf("returned after %s, before the stuck service's timeout", d)
	}
}

func TestDoneIsNotRestarted(t *testing.T) {
	s := New(nil)
	off := &svc{name: "metrics", run: func(context.Context) error { return nil }}
	s.Add(off, false)
	ctx, cancel := context.WithCancel(context.Background())
	c := runAsync(s, ctx)
	time.Sleep(1500 * time.Millisecond)
	if off.runs.Load() != 1 || s.States()[0].State != Done {
		t.Errorf("runs %d, state %q", off.runs.Load(), s.States()[0].State)
	}
	cancel()
	wait(t, c, time.Second)
}

// A Fatal error of a service that is not critical stops the supervisor
// too, with the service's name; it is not restarted.
func TestFatalErrorIsFatal(t *testing.T) {
	s := New(nil)
	s.Add(&svc{name: "tunnel"}, true)
	stop := make(chan struct{})
	kubelet := &svc{name: "kubelet", run: func(ctx context.Context) error {
		select {
		case <-stop:
			return Fatal(errors.New("stopped after running 2h0m0s"))
		case <-ctx.Done():
			return nil
		}
	}}
	s.Add(kubelet, false)
	c := runAsync(s, context.Background())
	close(stop)
	err := wait(t, c, time.Second)
	if err == nil || err.Error() != "kubelet: stopped after running 2h0m0s" || !IsFatal(err) {
		t.Fatalf("err = %v", err)
	}
	if n := kubelet.runs.Load(); n != 1 {
		t.Errorf("kubelet ran %d times, want once", n)
	}
	if st := s.States(); st[0].State != Stopped || !strings.HasPrefix(st[1].State, "failed: ") {
		t.Errorf("states %+v", st)
	}
}
