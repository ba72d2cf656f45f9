// Package containerd runs containerd as a child process of hepto (it
// cannot share hepto's process: embedded etcd registers the same gRPC
// metrics), with everything under the node's directory, and imports image
// archives into it.
package containerd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hepto-net/hepto/k8s/component"
	"github.com/hepto-net/hepto/kubebin"
)

// Namespace is the containerd namespace of Kubernetes' images and
// containers.
const Namespace = "k8s.io"

// maxSocketPath is the longest path a unix socket may have (sun_path).
const maxSocketPath = 107

// Options configure a node's containerd.
type Options struct {
	Dir          string   // the node's containerd directory: root, state, socket, configuration
	CNIConfDir   string   // where the pod network configuration is
	CNIBinDirs   []string // where hepto-cni and the chained plugins are
	SandboxImage string   // the pause image, imported by hepto
	Registries   string   // HOST/hosts.toml: mirrors and credentials of registry HOST
	Snapshotter  string   // "" : overlayfs
	Logger       *slog.Logger

	// Filled in by withPaths.
	Root, State, Socket, TTRPCSocket, Opt, Runc string
}

func (o Options) withPaths() Options {
	o.Root = filepath.Join(o.Dir, "root")
	o.State = filepath.Join(o.Dir, "state")
	o.Socket = filepath.Join(o.Dir, "containerd.sock")
	o.TTRPCSocket = filepath.Join(o.Dir, "containerd.sock.ttrpc")
	o.Opt = filepath.Join(o.Dir, "opt")
	if o.Snapshotter == "" {
		o.Snapshotter = "overlayfs"
	}
	return o
}

// Containerd is a supervised containerd child process.
type Containerd struct {
	o     Options
	ready *component.Gate
}

// New checks what containerd needs (its binaries, runc, a short enough
// socket path) and prepares it; nothing runs yet. Its errors name the
// cause, for the one line hepto logs when Kubernetes cannot start.
func New(o Options) (*Containerd, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o = o.withPaths()
	if len(o.Socket) > maxSocketPath {
		return nil, fmt.Errorf("containerd's socket path %s is longer than %d bytes: use a shorter --state", o.Socket, maxSocketPath)
	}
	var err error
	if o.Runc, err = exec.LookPath("runc"); err != nil {
		return nil, errors.New("runc not found on PATH: install it (Debian: apt install runc)")
	}
	for _, name := range []string{"containerd", "containerd-shim-runc-v2", "ctr"} {
		if _, err := Binary(name); err != nil {
			return nil, err
		}
	}
	return &Containerd{o: o, ready: component.NewGate()}, nil
}

// Binary finds one of containerd's programs: beside the hepto executable
// the person ran (where `make install` puts them), else on PATH.
func Binary(name string) (string, error) {
	if self, err := kubebin.Origin(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found beside hepto nor on PATH (make build puts it in bin/)", name)
	}
	return p, nil
}

// Socket is containerd's API socket.
func (c *Containerd) Socket() string { return c.o.Socket }

// Ready waits until containerd answers on its socket.
func (c *Containerd) Ready(ctx context.Context) error { return c.ready.Wait(ctx) }

// Name is the service's name.
func (c *Containerd) Name() string { return "containerd" }

// Run starts containerd and waits for its end, or stops it when ctx ends.
// Containers outlive it: their shims are processes of their own, which
// the next containerd finds again.
func (c *Containerd) Run(ctx context.Context) error {
	defer c.ready.Close()
	confPath, err := c.WriteConfig()
	if err != nil {
		return err
	}
	bin, err := Binary("containerd")
	if err != nil {
		return err
	}
	shim, err := Binary("containerd-shim-runc-v2")
	if err != nil {
		return err
	}
	group, err := shimGroup(shim)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--config", confPath)
	// The shim is looked up on PATH: containerd's own directory first.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		shimGroupEnv+"="+group)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // a terminal's ^C is for hepto, which stops containerd itself
		Pdeathsig: syscall.SIGTERM, // hepto killed: containerd stops, the containers stay
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	go logLines(stderr, c.o.Logger.With("component", "containerd"))
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// The readiness probe lives as long as this run: a containerd that
	// exits, restarted by the supervisor, leaves no probe behind.
	probeCtx, stopProbe := context.WithCancel(ctx)
	var probing sync.WaitGroup
	probing.Go(func() { c.waitSocket(probeCtx) })
	defer probing.Wait()
	defer stopProbe()

	select {
	case err := <-exited:
		return fmt.Errorf("containerd exited: %w", exitError(err))
	case <-ctx.Done():
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(3 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	return nil
}

// WriteConfig makes containerd's directories and writes its configuration
// file, as Run does at each start, and returns the file's path: for
// running containerd with hepto's configuration outside hepto (the
// Kubernetes benchmark's reference run).
func (c *Containerd) WriteConfig() (string, error) {
	conf, err := renderConfig(c.o)
	if err != nil {
		return "", err
	}
	for _, d := range []string{c.o.Dir, c.o.Root, c.o.State, c.o.Opt} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return "", err
		}
	}
	confPath := filepath.Join(c.o.Dir, "config.toml")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return "", err
	}
	return confPath, nil
}

// waitSocket opens the ready gate once the CRI answers with the
// runtime's version (the kubelet refuses a runtime that does not), or
// returns when ctx ends. One gRPC client, closed on return, asks every
// 100 ms; it connects again at most 1 s after a failure.
func (c *Containerd) waitSocket(ctx context.Context) {
	conn, err := grpc.NewClient("unix:"+c.o.Socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}))
	if err != nil {
		c.o.Logger.Error("containerd's readiness probe", "err", err)
		return
	}
	defer conn.Close()
	cri := runtimeapi.NewRuntimeServiceClient(conn)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		vctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, err := cri.Version(vctx, &runtimeapi.VersionRequest{Version: "v1"})
		cancel()
		if err == nil && v.RuntimeVersion != "" {
			c.ready.Open()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func exitError(err error) error {
	if err == nil {
		return errors.New("status 0")
	}
	return err
}

// logLines passes containerd's log lines (logfmt, warnings and worse) on.
func logLines(r io.Reader, log *slog.Logger) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		line := s.Text()
		level := slog.LevelWarn
		if strings.Contains(line, "level=error") || strings.Contains(line, "level=fatal") {
			level = slog.LevelError
		}
		log.Log(context.Background(), level, line)
	}
}
