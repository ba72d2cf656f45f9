package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Proc is a background process started by Host.Start.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // from Wait; read after done
}

func newProc(c *exec.Cmd, log *os.File) *Proc {
	p := &Proc{cmd: c, done: make(chan struct{})}
	go func() {
		p.err = c.Wait()
		log.Close()
		close(p.done)
	}()
	return p
}

// Pid is the process id, also its process group id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit code (see Stop).
// err is set only when waiting itself failed.
func (p *Proc) Wait() (exitCode int, err error) {
	<-p.done
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		return p.exitCode(), fmt.Errorf("wait %d: %w", p.Pid(), p.err)
	}
	return p.exitCode(), nil
}

// Stop sends sig to the process group, waits up to timeout for the process to
// exit, then kills the group. exitCode is the process's exit status, or 128
// plus the signal that ended it; err is set when it had to be killed.
func (p *Proc) Stop(sig os.Signal, timeout time.Duration) (exitCode int, err error) {
	select {
	case <-p.done:
		return p.exitCode(), nil
	default:
	}
	s, ok := sig.(syscall.Signal)
	if !ok {
		return 0, fmt.Errorf("stop %d: unsupported signal %v", p.Pid(), sig)
	}
	if err := killGroup(p.Pid(), s); err != nil && !errors.Is(err, syscall.ESRCH) {
		return 0, fmt.Errorf("stop %d: %w", p.Pid(), err)
	}
	select {
	case <-p.done:
		return p.exitCode(), nil
	case <-time.After(timeout):
	}
	killGroup(p.Pid(), syscall.SIGKILL)
	<-p.done
	return p.exitCode(), fmt.Errorf("stop %d: still running %v after %v: killed", p.Pid(), timeout, sig)
}

func (p *Proc) exitCode() int {
	st := p.cmd.ProcessState
	if st == nil {
		return -1
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// killGroup signals the process group led by pid.
func killGroup(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pid, sig); err != nil {
		return fmt.Errorf("kill -%d %v: %w", pid, sig, err)
	}
	return nil
}
