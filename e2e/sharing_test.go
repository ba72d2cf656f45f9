package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkSharedSafely: the control plane's guards for a cluster shared by
// several households, on a running cluster whose control plane is cp.
//   - Pod Security's baseline is enforced by default: a privileged pod is
//     refused in the default namespace.
//   - A Secret's value is nowhere in etcd's files (WAL, database) in plain
//     text.
//   - The audit log records a deletion with the name of who made it.
//   - Anonymous requests get the health checks only.
func checkSharedSafely(t *testing.T, cp *node) {
	t.Helper()
	out, err := kubectlErr(cp, "run", "privileged", "--image", webImage, "--image-pull-policy", "Never", "--privileged")
	if err == nil || !strings.Contains(out+err.Error(), "violates PodSecurity") {
		t.Errorf("a privileged pod in the default namespace: %v %s, want refused by Pod Security (baseline)", err, out)
	}

	b := make([]byte, 12)
	rand.Read(b)
	value := "hepto-secret-" + hex.EncodeToString(b)
	kubectl(t, cp, "create", "secret", "generic", "household-a", "--from-literal=password="+value)
	etcdDir := filepath.Join(cp.State, "kubernetes", "etcd")
	files := 0
	err = filepath.WalkDir(etcdDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		if bytes.Contains(data, []byte(value)) {
			t.Errorf("the Secret's value in plain text in %s", path)
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Errorf("etcd's files under %s: %d read, %v", etcdDir, files, err)
	}

	kubectl(t, cp, "delete", "secret", "household-a")
	audit := filepath.Join(cp.State, "kubernetes", "audit", "audit.log")
	eventually(t, 10*time.Second, func() error {
		data, err := os.ReadFile(audit)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, `"verb":"delete"`) && strings.Contains(line, `"name":"household-a"`) && strings.Contains(line, `"username":"hepto-admin"`) {
				return nil
			}
		}
		return fmt.Errorf("no deletion of secret household-a by hepto-admin in %s", audit)
	})

	st, _, err := cp.status()
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:     cp.Host.DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	for path, want := range map[string]int{"/readyz": http.StatusOK, "/livez": http.StatusOK, "/api": http.StatusUnauthorized, "/version": http.StatusUnauthorized} {
		resp, err := hc.Get("https://" + net.JoinHostPort(st.OverlayIPs[0], "6443") + path)
		if err != nil {
			t.Errorf("anonymous %s: %v", path, err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("anonymous %s: %s, want %d", path, resp.Status, want)
		}
	}
}
