package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hepto-net/hepto/kubebin"
	"github.com/hepto-net/hepto/lab"
)

// TestFabricBuild: the installed hepto (make build's bin/hepto) runs its
// commands and a fabric-only node without Kubernetes' initialisers, and
// starts the full build, unpacked once, where Kubernetes is wanted
// (docs/architecture.md, "Two builds in one file").
func TestFabricBuild(t *testing.T) {
	if os.Getenv("HEPTO_BIN") == "" {
		t.Skip("needs the built binaries: run through `make test` (HEPTO_BIN is bin/hepto)")
	}
	// A command runs the fabric's initialisers only.
	cmd := exec.Command(heptoBin, "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if out, err := cmd.Output(); err != nil || !strings.HasPrefix(string(out), "hepto ") {
		t.Fatalf("hepto version: %q, %v\n%s", out, err, stderr.String())
	}
	inits := 0
	for _, l := range strings.Split(stderr.String(), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "init" {
			continue
		}
		inits++
		if strings.HasPrefix(f[1], "k8s.io/") || strings.HasPrefix(f[1], "github.com/hepto-net/hepto/k8s") && f[1] != "github.com/hepto-net/hepto/k8s/publish/ports" {
			t.Errorf("hepto version initialises %s: Kubernetes is linked into the fabric build", f[1])
		}
	}
	t.Logf("hepto version: %d package initialisers", inits)

	// kubectl is the full build's: unpacked into an empty directory, then
	// run (its refusal without an admin kubeconfig is the full build's).
	data := filepath.Join(t.TempDir(), "data")
	state := t.TempDir()
	run := func() (string, time.Duration) {
		t.Helper()
		cmd := exec.Command(heptoBin, "kubectl", "--state", state, "get", "nodes")
		cmd.Env = append(os.Environ(), kubebin.EnvDir+"="+data)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("hepto kubectl without a control plane: no error\n%s", out)
		}
		return string(out), time.Since(start)
	}
	out, first := run()
	if !strings.Contains(out, "no admin kubeconfig") {
		t.Fatalf("hepto kubectl did not reach the full build: %s", out)
	}
	exes, _ := filepath.Glob(filepath.Join(data, "*", kubebin.Name))
	if len(exes) != 1 {
		t.Fatalf("unpacked: %v, want one executable under %s", exes, data)
	}
	fi, _ := os.Stat(exes[0])
	_, again := run()
	t.Logf("hepto kubectl: %s the first time (unpacking %d MB), %s after", first.Round(time.Millisecond), fi.Size()>>20, again.Round(time.Millisecond))
	if fi2, _ := os.Stat(exes[0]); !fi2.ModTime().Equal(fi.ModTime()) {
		t.Error("the full build was unpacked a second time")
	}

	// Unpacked where nothing may be executed: a clear error, not a hang.
	noexec := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "noexec,mode=0755,size=256m", "tmpfs", noexec).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", noexec).Run() })
	cmd = exec.Command(heptoBin, "kubectl", "--state", state, "get", "nodes")
	cmd.Env = append(os.Environ(), kubebin.EnvDir+"="+noexec)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "noexec") {
		t.Errorf("hepto kubectl with a noexec data directory: %v, %s", err, out)
	} else {
		t.Logf("noexec data directory: %s", strings.TrimSpace(string(out)))
	}

	// A fabric-only node is the installed file's process itself.
	w := newWorld(t)
	a := w.anchor("anchor", w.publicHost("anchor"))
	b := w.join("home-a", w.home("home-a", lab.HomeOptions{}).Machines[0], a)
	if _, err := b.WaitConnected(60*time.Second, "anchor"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{a, b} {
		exe, err := os.Readlink("/proc/" + strconv.Itoa(n.Proc.Pid()) + "/exe")
		if err != nil || exe != heptoBin {
			t.Errorf("%s runs %q (%v), want %s", n.Name, exe, err, heptoBin)
		}
	}
}
