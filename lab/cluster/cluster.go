// Package cluster runs hepto nodes in the lab: it drives the hepto binary
// through its commands, as a person would, for the tests, the demo and the
// benchmarks.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hepto-net/hepto/lab"
	"github.com/hepto-net/hepto/localapi"
)

// Cluster is a set of hepto nodes in one lab.
type Cluster struct {
	Lab  *lab.Lab
	Bin  string // the hepto binary
	Dir  string // state directories and logs
	Name string // cluster name; default "demo"
	// Kubernetes runs Kubernetes on the nodes (else --kubernetes=false);
	// call RemovePods when done.
	Kubernetes bool
	// Images are image archives put in each node's STATE/images before
	// its first start.
	Images []string
	// Mirrors are registry mirrors written into each node's
	// STATE/registries before its first start: registry host → the
	// hosts.toml that names its mirror (lab/registry.HostsTOML).
	Mirrors map[string]string
	ctx     context.Context
	nodes   []*Node
}

// New returns a cluster whose nodes keep their files under dir.
func New(ctx context.Context, l *lab.Lab, bin, dir string) *Cluster {
	return &Cluster{Lab: l, Bin: bin, Dir: dir, Name: "demo", ctx: ctx}
}

// Node is a hepto daemon on a lab host.
type Node struct {
	Name  string
	Host  *lab.Host
	State string // state directory
	CNI   string // where the daemon writes its CNI configuration
	Log   string // log of the current run
	Proc  *lab.Proc
	Env   []string // added to the daemon's environment
	c     *Cluster
	runs  int
}

// Node describes a node without starting anything.
func (c *Cluster) Node(name string, h *lab.Host) *Node {
	n := &Node{Name: name, Host: h, State: filepath.Join(c.Dir, name, "state"), CNI: filepath.Join(c.Dir, name, "cni"), c: c}
	c.nodes = append(c.nodes, n)
	return n
}

// Anchor makes the cluster on a public host (UDP port 51820) and starts it.
func (c *Cluster) Anchor(name string, h *lab.Host, flags ...string) (*Node, error) {
	n := c.Node(name, h)
	if _, err := n.Hepto("init", "--cluster", c.Name, "--name", name, "--endpoint", h.IPv4.String()+":51820"); err != nil {
		return nil, err
	}
	if err := n.Start(flags...); err != nil {
		return nil, err
	}
	return n, n.WaitSocket(20 * time.Second)
}

// Join starts a node with a fresh token from anchor.
func (c *Cluster) Join(name string, h *lab.Host, anchor *Node, flags ...string) (*Node, error) {
	tok, err := anchor.Token(name)
	if err != nil {
		return nil, err
	}
	return c.JoinWith(name, h, tok, flags...)
}

// JoinAnchor starts a public host as a further anchor (UDP port 51820),
// with a token from anchor.
func (c *Cluster) JoinAnchor(name string, h *lab.Host, anchor *Node, flags ...string) (*Node, error) {
	tok, err := anchor.Token(name, "--anchor", "--endpoint", h.IPv4.String()+":51820")
	if err != nil {
		return nil, err
	}
	return c.JoinWith(name, h, tok, flags...)
}

// JoinWith starts a node with the token given.
func (c *Cluster) JoinWith(name string, h *lab.Host, tok string, flags ...string) (*Node, error) {
	n := c.Node(name, h)
	if err := n.Start(append([]string{"--join", tok}, flags...)...); err != nil {
		return nil, err
	}
	return n, n.WaitSocket(60 * time.Second)
}

// Hepto runs a hepto command on the node's host, with --state, and returns
// its stdout; the error carries stderr.
func (n *Node) Hepto(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(n.c.ctx, 90*time.Second)
	defer cancel()
	cmd := n.Host.Command(ctx, n.c.Bin, append(args, "--state", n.State)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: hepto %s: %w: %s", n.Name, args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Start runs the daemon in the background; each run logs to a new file.
func (n *Node) Start(flags ...string) error {
	return n.StartAs(nil, flags...)
}

// StartAs is Start with a command prefix, e.g. setpriv to drop root.
func (n *Node) StartAs(prefix []string, flags ...string) error {
	n.runs++
	if n.runs == 1 {
		if err := n.placeImages(); err != nil {
			return err
		}
	}
	n.Log = filepath.Join(n.c.Dir, n.Name, fmt.Sprintf("run%d.log", n.runs))
	argv := append(append(append([]string{}, prefix...), n.c.Bin, "run", "--state", n.State, "--cni-conf-dir", n.CNI, "--log-level", "debug"), flags...)
	o := lab.StartOptions{Env: n.Env, HostMounts: n.c.Kubernetes}
	if !n.c.Kubernetes {
		argv = append(argv, "--kubernetes=false")
	}
	p, err := n.Host.StartWith(n.c.ctx, n.Log, o, argv[0], argv[1:]...)
	if err != nil {
		return err
	}
	n.Proc = p
	return nil
}

// Stop sends sig and waits for the exit code.
func (n *Node) Stop(sig syscall.Signal) (int, error) {
	return n.Proc.Stop(sig, 15*time.Second)
}

// WaitSocket waits for the daemon's command socket, or its early exit.
func (n *Node) WaitSocket(timeout time.Duration) error {
	return Eventually(timeout, func() error {
		select {
		case <-n.Proc.Done():
			return Permanent(fmt.Errorf("%s exited: %s", n.Name, n.LastLines(5)))
		default:
		}
		_, err := os.Stat(filepath.Join(n.State, "hepto.sock"))
		return err
	})
}

// Token asks the node (an anchor) for a join token.
func (n *Node) Token(name string, flags ...string) (string, error) {
	out, err := n.Hepto(append([]string{"token", "--name", name}, flags...)...)
	return strings.TrimSpace(out), err
}

// Status is `hepto status --json`, decoded, and as printed.
func (n *Node) Status() (localapi.Status, []byte, error) {
	out, err := n.Hepto("status", "--json")
	if err != nil {
		return localapi.Status{}, nil, err
	}
	var st localapi.Status
	err = json.Unmarshal([]byte(out), &st)
	return st, []byte(out), err
}

// WaitConnected waits until every name is a connected peer.
func (n *Node) WaitConnected(timeout time.Duration, names ...string) (localapi.Status, error) {
	var st localapi.Status
	err := Eventually(timeout, func() error {
		var err error
		if st, _, err = n.Status(); err != nil {
			return err
		}
		for _, name := range names {
			p, ok := Peer(st, name)
			if !ok {
				return fmt.Errorf("%s: no peer %s yet", n.Name, name)
			}
			if !p.Connected {
				return fmt.Errorf("%s: peer %s not connected", n.Name, name)
			}
		}
		return nil
	})
	return st, err
}

// Ping sends ICMP echoes through the kernel (TUN mode) until one answers.
func (n *Node) Ping(ip string, within time.Duration) error {
	return Eventually(within, func() error {
		_, err := n.Host.Run(n.c.ctx, "ping", "-c", "1", "-W", "1", ip)
		return err
	})
}

// LastLines is the end of the current run's log.
func (n *Node) LastLines(k int) string {
	b, _ := os.ReadFile(n.Log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-k):], "\n")
}

// Failures are the first k lines of the log where a service failed (the
// supervisor's lines) or the process panicked: what a failed test needs
// first, wherever it is in a long log.
func (n *Node) Failures(k int) string {
	b, _ := os.ReadFile(n.Log)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if len(out) == k {
			break
		}
		if strings.Contains(l, `msg="service failed`) || strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Peer finds a peer by name.
func Peer(st localapi.Status, name string) (localapi.PeerStatus, bool) {
	for _, p := range st.Peers {
		if p.Name == name {
			return p, true
		}
	}
	return localapi.PeerStatus{}, false
}

type permanent struct{ error }

// Permanent stops Eventually at once.
func Permanent(err error) error { return permanent{err} }

// Eventually retries f every 250 ms until it succeeds or timeout passes.
func Eventually(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		var p permanent
		if err == nil || errors.As(err, &p) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// placeImages copies the cluster's image archives into STATE/images, and
// writes its registry mirrors.
func (n *Node) placeImages() error {
	for host, conf := range n.c.Mirrors {
		dir := filepath.Join(n.State, "registries", host)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(conf), 0o644); err != nil {
			return err
		}
	}
	if len(n.c.Images) == 0 {
		return nil
	}
	dir := filepath.Join(n.State, "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, src := range n.c.Images {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
