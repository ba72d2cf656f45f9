package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/hepto-net/hepto/lab"
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

// checkLANIsolated: a host on a home's LAN that routes a pod's address,
// a ClusterIP and the home's overlay address through the home reaches
// none of them (all three answer from the control-plane node, over the
// overlay); the hostPort published by the pod answers from the LAN
// (checkHostPort). Runs after checkHostPort, whose pod hostport-all it
// uses.
func checkLANIsolated(t *testing.T, cp, home *node, lanPeer *lab.Host) {
	t.Helper()
	const ns = "host-ports"
	kubectl(t, cp, "expose", "pod", "hostport-all", "-n", ns, "--name", "lan-test", "--port", "80", "--target-port", "8080")
	podIP := strings.TrimSpace(kubectl(t, cp, "get", "pod", "hostport-all", "-n", ns, "-o", "jsonpath={.status.podIP}"))
	clusterIP := strings.TrimSpace(kubectl(t, cp, "get", "service", "lan-test", "-n", ns, "-o", "jsonpath={.spec.clusterIP}"))
	st, _, err := home.status()
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]string{
		"pod":          "http://" + net.JoinHostPort(podIP, "8080") + "/",
		"ClusterIP":    "http://" + net.JoinHostPort(clusterIP, "80") + "/",
		"control port": "http://" + net.JoinHostPort(st.OverlayIPs[0], "51821") + "/v1/membership",
	}
	for what, url := range targets {
		eventually(t, 30*time.Second, func() error {
			if _, err := httpGet(cp.Host, url); err != nil {
				return fmt.Errorf("%s %s from %s: %w", what, url, cp.Name, err)
			}
			return nil
		})
	}
	for _, ip := range []string{podIP, clusterIP, st.OverlayIPs[0]} {
		if out, err := lanPeer.Run(cp.w.ctx, "ip", "route", "replace", ip+"/32", "via", home.Host.IPv4.String()); err != nil {
			t.Fatalf("route %s via %s on %s: %v %s", ip, home.Name, lanPeer.Name, err, out)
		}
	}
	for what, url := range targets {
		if out, err := httpGet(lanPeer, url); err == nil {
			t.Errorf("%s %s answered %s's LAN (%s): %q", what, url, home.Name, lanPeer.Name, out)
		}
	}
}

// checkKubeconfigs: a household's admin gets a kubeconfig for their
// namespace only; it works there at once, nowhere else, is listed, and
// stops working when revoked. The default kubeconfig is a cluster admin
// named "admin", bound by RBAC, not system:masters.
func checkKubeconfigs(t *testing.T, cp *node) {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, args ...string) string {
		out, err := cp.Hepto(append([]string{"kubeconfig"}, args...)...)
		if err != nil {
			t.Fatalf("hepto kubeconfig %v: %v %s", args, err, out)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	alice := write("alice", "--user", "alice", "--namespace", "household-a", "--ttl", "1h")
	admin := write("admin")
	as := func(kc string, args ...string) (string, error) {
		return kubectlErr(cp, append([]string{"--kubeconfig", kc}, args...)...)
	}
	if out, err := as(alice, "get", "pods", "-n", "household-a"); err != nil {
		t.Errorf("alice in her namespace: %v %s", err, out)
	}
	for _, ns := range []string{"default", "kube-system"} {
		if out, err := as(alice, "get", "secrets", "-n", ns); err == nil || !strings.Contains(out+err.Error(), "forbidden") {
			t.Errorf("alice reads secrets in %s: %v %s, want forbidden", ns, err, out)
		}
	}
	if out, err := as(admin, "get", "nodes"); err != nil {
		t.Errorf("the default kubeconfig lists nodes: %v %s", err, out)
	}
	if cfg, err := clientcmd.LoadFromFile(admin); err != nil {
		t.Error(err)
	} else {
		for name, a := range cfg.AuthInfos {
			block, _ := pem.Decode(a.ClientCertificateData)
			if block == nil {
				t.Fatalf("kubeconfig user %s: no certificate", name)
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil || c.Subject.CommonName != "admin" || slices.Contains(c.Subject.Organization, "system:masters") {
				t.Errorf("the default kubeconfig's certificate: %v %v, want admin, not system:masters", c.Subject, err)
			}
		}
	}
	list, err := cp.Hepto("kubeconfig", "--list")
	if err != nil || !strings.Contains(list, "alice") || !strings.Contains(list, "admin of household-a") {
		t.Errorf("kubeconfig --list: %v\n%s", err, list)
	}
	if out, err := cp.Hepto("kubeconfig", "--revoke", "alice"); err != nil {
		t.Fatalf("revoke alice: %v %s", err, out)
	}
	eventually(t, 10*time.Second, func() error {
		if out, err := as(alice, "get", "pods", "-n", "household-a"); err == nil {
			return fmt.Errorf("alice's revoked kubeconfig still lists pods: %s", out)
		}
		return nil
	})
}

// untaint takes the control-plane and anchor taints off a node, as an
// administrator does for a cluster too small to keep them.
func untaint(t *testing.T, cp *node, name string) {
	t.Helper()
	eventually(t, time.Minute, func() error {
		_, err := kubectlErr(cp, "get", "node", name)
		return err
	})
	for _, taint := range []string{"node-role.kubernetes.io/control-plane:NoSchedule-", "hepto.net/anchor:NoSchedule-"} {
		if out, err := kubectlErr(cp, "taint", "nodes", name, taint); err != nil && !strings.Contains(out+err.Error(), "not found") {
			t.Fatalf("kubectl taint nodes %s %s: %v %s", name, taint, err, out)
		}
	}
}

// checkTaints: the anchor (a control-plane node) carries both taints; a
// pod bound for it by a node selector waits unless it tolerates them,
// and runs there when it does.
func checkTaints(t *testing.T, cp *node, anchor string) {
	t.Helper()
	taints := kubectl(t, cp, "get", "node", anchor, "-o", "jsonpath={range .spec.taints[*]}{.key}:{.effect} {end}")
	for _, want := range []string{"node-role.kubernetes.io/control-plane:NoSchedule", "hepto.net/anchor:NoSchedule"} {
		if !strings.Contains(taints, want) {
			t.Errorf("node %s taints %q, want %s", anchor, taints, want)
		}
	}
	pod := func(name, tolerations string) {
		kubectl(t, cp, "run", name, "--image", webImage, "--image-pull-policy", "Never", "--overrides",
			fmt.Sprintf(`{"spec":{"nodeSelector":{"kubernetes.io/hostname":%q},"tolerations":%s}}`, anchor, tolerations), "--command", "--", "/web", "serve")
	}
	pod("intolerant", "[]")
	pod("tolerant", `[{"key":"node-role.kubernetes.io/control-plane","operator":"Exists","effect":"NoSchedule"},{"key":"hepto.net/anchor","operator":"Exists","effect":"NoSchedule"}]`)
	kubectl(t, cp, "wait", "--for=condition=Ready", "pod/tolerant", "--timeout=120s")
	eventually(t, 30*time.Second, func() error {
		out, err := kubectlErr(cp, "get", "pod", "intolerant", "-o", "jsonpath={.status.phase} {.status.conditions[?(@.type=='PodScheduled')].reason}")
		if err != nil || strings.TrimSpace(out) != "Pending Unschedulable" {
			return fmt.Errorf("pod without tolerations for %s: %q %v, want Pending Unschedulable", anchor, out, err)
		}
		return nil
	})
	kubectl(t, cp, "delete", "pod", "intolerant", "tolerant", "--wait=false")
}
