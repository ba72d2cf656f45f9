package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hepto-net/hepto/lab"
)

// runFails runs `hepto run` expecting it to give up: non-zero exit and one
// line on stderr that contains want.
func (n *node) runFails(t *testing.T, want string, flags ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(n.w.ctx, 90*time.Second)
	defer cancel()
	// The fabric alone, as the lab's nodes run unless a test asks.
	c := n.Host.Command(ctx, heptoBin, append([]string{"run", "--state", n.State, "--kubernetes=false"}, flags...)...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	err := c.Run()
	if err == nil || c.ProcessState == nil || c.ProcessState.ExitCode() <= 0 {
		t.Fatalf("%s: hepto run did not fail (%v); stderr:\n%s", n.Name, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], want) {
		t.Fatalf("%s: want one line with %q, got:\n%s", n.Name, want, stderr.String())
	}
	t.Logf("%s: %s", n.Name, lines[0])
}

// snapshot reads every file of a state directory.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = b
		}
	}
	if len(out) == 0 {
		t.Fatalf("no files in state directory %s", dir)
	}
	return out
}

func sameFiles(t *testing.T, what string, before, after map[string][]byte) {
	t.Helper()
	for name, b := range before {
		if !bytes.Equal(b, after[name]) {
			t.Errorf("%s: %s changed or lost", what, name)
		}
	}
}

func TestBadInput(t *testing.T) {
	w := newWorld(t)
	a := w.anchor("anchor", w.publicHost("anchor"))
	home := w.home("home", lab.HomeOptions{NAT: lab.EIM, Machines: 2})
	m1, m2 := home.Machines[0], home.Machines[1]

	t.Run("garbage token", func(t *testing.T) {
		w.node("garbage", m1).runFails(t, "not a hepto join token", "--join", "hello-world")
	})
	t.Run("truncated token", func(t *testing.T) {
		tok := a.token("trunc")
		w.node("trunc", m1).runFails(t, "damaged or truncated", "--join", tok[:len(tok)/2])
	})
	t.Run("expired token", func(t *testing.T) {
		tok := a.token("late", "--ttl", "1s")
		time.Sleep(1500 * time.Millisecond)
		w.node("late", m1).runFails(t, "token expired", "--join", tok)
	})

	// A valid join, for what follows.
	tok := a.token("first")
	first := w.node("first", m1)
	first.start("--join", tok)
	first.waitSocket()
	first.waitConnected(60*time.Second, "anchor")

	t.Run("token used twice", func(t *testing.T) {
		w.node("second", m2).runFails(t, "token already used", "--join", tok)
	})
	t.Run("token of another cluster", func(t *testing.T) {
		other := w.node("other-anchor", w.publicHost("other-anchor"))
		if _, err := other.Hepto("init", "--cluster", "other", "--name", "other-anchor", "--endpoint", other.Host.IPv4.String()+":51820"); err != nil {
			t.Fatal(err)
		}
		other.start()
		other.waitSocket()
		foreign := other.token("first")
		// A member of demo refuses it before touching anything.
		before := snapshot(t, first.State)
		if code := first.stop(syscall.SIGTERM); code != 0 {
			t.Fatalf("exit code %d", code)
		}
		first.runFails(t, `token is for cluster "other"`, "--join", foreign)
		sameFiles(t, "first", before, snapshot(t, first.State))
		// With its anchor gone, a fresh node gives up with a clear line.
		other.stop(syscall.SIGTERM)
		w.node("stray", m2).runFails(t, "no answer from anchor", "--join", foreign)
	})
	t.Run("corrupt state file", func(t *testing.T) {
		before := snapshot(t, first.State)
		path := filepath.Join(first.State, "membership.json")
		corrupt := []byte(`{"kind":"membership","payl`)
		if err := os.WriteFile(path, corrupt, 0o644); err != nil {
			t.Fatal(err)
		}
		first.runFails(t, "membership.json is corrupt")
		if b, _ := os.ReadFile(path); !bytes.Equal(b, corrupt) {
			t.Fatal("corrupt file rewritten")
		}
		os.WriteFile(path, before["membership.json"], 0o644)
		sameFiles(t, "first", before, snapshot(t, first.State))
		first.start()
		first.waitSocket()
		first.waitConnected(60*time.Second, "anchor")
	})

	// The anchor is still up and admits the next valid node.
	if _, err := os.Stat(filepath.Join(a.State, "hepto.sock")); err != nil {
		t.Fatal("anchor gone")
	}
	next := w.join("next", m2, a)
	next.waitConnected(60*time.Second, "anchor", "first")
}
