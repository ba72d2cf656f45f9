package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Host is one network namespace of the lab: a public host, a NAT box, a home
// machine or the Internet router.
type Host struct {
	Name  string // as given to the lab, or "HOME-box", "HOME-N"
	Netns string // the namespace, for `ip netns exec`
	IPv4  netip.Addr
	IPv6  netip.Addr // zero if none

	lab *Lab
}

// Command returns a command that runs name in the host's namespace through
// `ip netns exec`, in a process group of its own. Close kills it, as it kills
// every process in the lab's namespaces; so does the end of ctx (SIGTERM to
// the group, SIGKILL after the lab's grace period). The caller may set its
// Env, Stdout, and so on before starting it.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return h.command(ctx, StartOptions{}, name, args...)
}

// StartOptions change how a process starts on a host.
type StartOptions struct {
	Env []string // added to the environment
	// HostMounts keeps the machine's mounts: `ip netns exec` mounts a sysfs
	// of the namespace over /sys, which hides the cgroup file systems that
	// a kubelet needs. Files in /etc/netns/NAME are then not used.
	HostMounts bool
}

func (h *Host) command(ctx context.Context, o StartOptions, name string, args ...string) *exec.Cmd {
	argv := append([]string{"netns", "exec", h.Netns, name}, args...)
	prog := "ip"
	if o.HostMounts {
		prog, argv = "nsenter", append([]string{"--net=/run/netns/" + h.Netns, "--", name}, args...)
	}
	c := exec.CommandContext(ctx, prog, argv...)
	if len(o.Env) > 0 {
		c.Env = append(os.Environ(), o.Env...)
	}
	c.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// Dies with the lab's process even if Close never runs.
		Pdeathsig: syscall.SIGKILL,
	}
	c.Cancel = func() error { return killGroup(c.Process.Pid, syscall.SIGTERM) }
	c.WaitDelay = h.lab.grace
	h.lab.log.Debug("command", "host", h.Name, "cmd", strings.Join(append([]string{name}, args...), " "))
	return c
}

// Run runs name to completion in the host's namespace and returns its combined
// output; its error carries that output too.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	c := h.Command(ctx, name, args...)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s %s: %w: %s", h.Name, name,
			strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Start starts name in the background in the host's namespace, its stdout and
// stderr going to logPath (created with its directory; empty: discarded).
func (h *Host) Start(ctx context.Context, logPath string, name string, args ...string) (*Proc, error) {
	return h.StartWith(ctx, logPath, StartOptions{}, name, args...)
}

// StartWith is Start with options.
func (h *Host) StartWith(ctx context.Context, logPath string, o StartOptions, name string, args ...string) (*Proc, error) {
	out := os.DevNull
	if logPath != "" {
		if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
			return nil, fmt.Errorf("%s: log dir: %w", h.Name, err)
		}
		out = logPath
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log: %w", h.Name, err)
	}
	c := h.command(ctx, o, name, args...)
	c.Stdout, c.Stderr = f, f
	if err := c.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: start %s: %w", h.Name, name, err)
	}
	return newProc(c, f), nil
}

// Do runs fn on an OS thread inside the host's namespace: sockets fn opens
// belong to the host, and keep working after fn returns. Goroutines fn starts
// do not run in the namespace.
func (h *Host) Do(fn func() error) error {
	return inNetns(h.Netns, fn)
}

// ListenPacket is net.ListenPacket inside the host's namespace.
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := h.Do(func() (err error) {
		pc, err = net.ListenPacket(network, address)
		return err
	})
	return pc, err
}

// Listen is net.Listen inside the host's namespace.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// DialContext is net.Dialer.DialContext from inside the host's namespace.
// Addresses must be literal: name resolution would run outside it.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

func (h *Host) String() string { return h.Name }
