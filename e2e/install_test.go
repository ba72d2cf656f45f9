package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstall: `make install-files` puts the binaries together (hepto
// finds containerd and hepto-cni beside itself), links hepto on PATH, and
// writes a systemd unit that restarts on failure and kills no pod.
func TestInstall(t *testing.T) {
	if os.Getenv("HEPTO_BIN") == "" {
		t.Skip("needs the built binaries: run through `make test` (HEPTO_BIN)")
	}
	needKubernetesBinaries(t)
	dest := t.TempDir()
	cmd := exec.Command("make", "-C", "..", "install-files", "DESTDIR="+dest, "PREFIX=/usr/local", "BIN="+filepath.Dir(heptoBin))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install-files: %v\n%s", err, out)
	}
	lib := filepath.Join(dest, "usr/local/lib/hepto")
	for _, name := range []string{"hepto", "hepto-cni", "containerd", "containerd-shim-runc-v2", "ctr"} {
		fi, err := os.Stat(filepath.Join(lib, name))
		if err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s not installed as an executable in %s: %v", name, lib, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(dest, "usr/local/bin/hepto")); err != nil || target != "/usr/local/lib/hepto/hepto" {
		t.Errorf("/usr/local/bin/hepto → %q (%v), want /usr/local/lib/hepto/hepto", target, err)
	}
	unit, err := os.ReadFile(filepath.Join(dest, "etc/systemd/system/hepto.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=/usr/local/bin/hepto run $HEPTO_ARGS", "Restart=on-failure", "KillMode=process", "EnvironmentFile=-/etc/default/hepto"} {
		if !strings.Contains(string(unit), "\n"+want+"\n") {
			t.Errorf("unit lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, "etc/default/hepto")); err != nil {
		t.Error(err)
	}
	// The unit as systemd reads it (ExecStart on a program that exists).
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
		checked := filepath.Join(t.TempDir(), "hepto.service")
		os.WriteFile(checked, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/hepto", "/bin/true")), 0o644)
		if out, err := exec.Command(analyze, "verify", checked).CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
}
