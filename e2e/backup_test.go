package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hepto-net/hepto/lab"
)

// TestBackupRestore: "our VPS is gone". The control-plane anchor's backup
// is restored into an empty state directory; the anchor comes back with
// the snapshot's objects, the homes reconnect without a token, and a node
// admitted after the backup keeps its index: the next join gets another.
func TestBackupRestore(t *testing.T) {
	k := startKube(t, kubeOptions{flags: func(*world) []string { return []string{"--backup-interval", "10s"} }})
	w, an := k.w, k.an
	kubectl(t, an, "create", "configmap", "before-backup", "--from-literal=k=v")
	file := filepath.Join(w.dir, "cluster.hepto-backup")
	out, err := an.Hepto("backup", file)
	if err != nil || !strings.Contains(out, "backup written") {
		t.Fatalf("hepto backup: %q %v", out, err)
	}
	keyFile := filepath.Join(an.State, "backup.key")
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	if out, err := k.a.Hepto("backup", filepath.Join(w.dir, "home.hepto-backup")); err == nil {
		t.Fatalf("a backup on a home: %q", out)
	}

	// Scheduled backups reach other nodes.
	copyFile := filepath.Join(k.a.State, "backups", "from-anchor.hepto-backup")
	eventually(t, time.Minute, func() error {
		_, err := os.Stat(copyFile)
		return err
	})

	// A node joins after the backup.
	hc := w.home("home-c", lab.HomeOptions{NAT: lab.EIM})
	nc := w.join("home-c", hc.Machines[0], an, "--kubernetes=false")
	stC := nc.waitConnected(60*time.Second, "anchor")

	// The VPS is gone; a fresh one gets its state from the backup.
	if code := an.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("anchor exit code %d", code)
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(w.dir, "anchor-fresh")
	if err := os.MkdirAll(fresh, 0o700); err != nil {
		t.Fatal(err)
	}
	keyCopy := filepath.Join(w.dir, "backup.key")
	wrong := filepath.Join(w.dir, "wrong.key")
	os.WriteFile(keyCopy, key, 0o600)
	os.WriteFile(wrong, []byte(strings.Repeat("ab", 32)), 0o600)
	an.State = fresh // Hepto gives --state
	if out, err := an.Hepto("restore", "--key", wrong, file); err == nil || !strings.Contains(err.Error(), "does not open with this key") {
		t.Fatalf("restore with a wrong key: %q %v", out, err)
	}
	if entries, _ := os.ReadDir(fresh); len(entries) != 0 {
		t.Fatalf("a failed restore left %d files", len(entries))
	}
	if out, err := an.Hepto("restore", "--key", keyCopy, file); err != nil {
		t.Fatalf("hepto restore: %q %v", out, err)
	}
	if out, err := an.Hepto("restore", "--key", keyCopy, file); err == nil {
		t.Fatalf("restore over a node: %q", out)
	}
	start := time.Now()
	an.start()
	an.waitSocket()
	// Ready as the snapshot has it proves nothing: each kubelet must renew
	// its lease with the restored apiserver.
	for _, name := range []string{"anchor", "home-a", "home-b"} {
		eventually(t, 3*time.Minute, func() error {
			out, err := kubectlErr(an, "get", "lease", "-n", "kube-node-lease", name, "-o", "jsonpath={.spec.renewTime}")
			if err != nil {
				return err
			}
			renewed, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(out))
			if err != nil {
				return fmt.Errorf("lease of %s: %q: %w", name, out, err)
			}
			if renewed.Before(start) {
				return fmt.Errorf("lease of %s renewed at %s, before the restored anchor started", name, renewed)
			}
			return nil
		})
	}
	eventually(t, time.Minute, func() error { return allReady(an, "anchor", "home-a", "home-b") })
	t.Logf("API back and every kubelet's lease renewed %.1fs after the restored anchor started", time.Since(start).Seconds())
	if out := kubectl(t, an, "get", "configmap", "before-backup", "-o", "jsonpath={.data.k}"); out != "v" {
		t.Fatalf("configmap of before the backup: %q", out)
	}
	k.a.waitConnected(60*time.Second, "anchor")

	// home-c, admitted after the backup, is known again (the homes gave
	// it back); the next node gets another index.
	eventually(t, 60*time.Second, func() error {
		_, err := an.Token("home-d")
		return err
	})
	hd := w.home("home-d", lab.HomeOptions{NAT: lab.EIM})
	nd := w.join("home-d", hd.Machines[0], an, "--kubernetes=false")
	stD := nd.waitConnected(60*time.Second, "anchor")
	if stD.OverlayIPs[0] == stC.OverlayIPs[0] {
		t.Fatalf("home-d got home-c's address %s", stD.OverlayIPs[0])
	}
	nc.waitConnected(60*time.Second, "anchor", "home-d")

	// The copy kept by home-a opens with the key and restores too.
	spare := w.c.Node("spare", an.Host)
	if out, err := spare.Hepto("restore", "--key", keyCopy, copyFile); err != nil {
		t.Fatalf("restore of home-a's copy: %q %v", out, err)
	}
}
