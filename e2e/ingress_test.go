package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hepto-net/hepto/lab/ingress"
)

// TestIngressACME is the ingress recipe (docs/ingress.md): Caddy, built
// from its Go source, behind a LoadBalancer Service with the PROXY
// protocol, in the symmetric-NAT home, serves two host names with
// certificates from the lab's Pebble (ACME, HTTP-01 and TLS-ALPN-01
// through the anchor), whose DNS server resolves the names to the
// anchor. A visitor's curl gets each site over HTTPS, on IPv4 and IPv6,
// checking the certificate against Pebble's root; HTTP is redirected to
// HTTPS; the sites see the visitor's address; the certificates, valid
// for 2 minutes, are renewed.
func TestIngressACME(t *testing.T) {
	tools := filepath.Dir(heptoBin)
	caddy, pebble := filepath.Join(tools, "caddy"), filepath.Join(tools, "pebble")
	for _, p := range []string{caddy, pebble} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is not beside hepto: `make ingress-tools` builds Caddy and Pebble from their Go source (make test does)", p)
		}
	}
	k := startKube(t, kubeOptions{})
	an, w := k.an, k.w
	v4, v6 := an.Host.IPv4, an.Host.IPv6
	web := filepath.Join(filepath.Dir(k.archive), "web")
	dir := t.TempDir()
	acme, err := ingress.Start(w.ctx, w.lab, ingress.Options{Pebble: pebble, Web: web, Dir: filepath.Join(dir, "acme"),
		Names:    map[string][]netip.Addr{"a.example.test": {v4, v6}, "b.example.test": {v4, v6}},
		Validity: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	archive, err := ingress.CaddyArchive(caddy, dir)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := k.b.Hepto("images", "import", archive); err != nil {
		t.Fatalf("hepto images import caddy: %v: %s", err, out)
	}
	for name, node := range map[string]string{"site-a": "home-a", "site-b": "home-b"} {
		kubectl(t, an, "run", name, "--image", webImage, "--image-pull-policy", "Never",
			"--overrides", fmt.Sprintf(`{"spec":{"nodeName":%q}}`, node), "--command", "--", "/web", "serve")
		kubectl(t, an, "expose", "pod", name, "--port", "8080")
	}
	// The Service first, until the anchor serves it.
	svc := filepath.Join(dir, "caddy-service.yaml")
	if err := os.WriteFile(svc, []byte(ingress.CaddyService), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, an, "apply", "-f", svc)
	eventually(t, time.Minute, func() error { return servedBy(an, "default/caddy", 4) })
	manifest := filepath.Join(dir, "caddy.yaml")
	if err := os.WriteFile(manifest, []byte(ingress.CaddyManifests(ingress.CaddyOptions{
		ACME: acme, Email: "webmaster@example.test", Overlay: "10.77.0.0/16", Node: "home-b", RenewInterval: "10s",
		Sites: []ingress.Site{{Host: "a.example.test", Upstream: "site-a.default.svc:8080"}, {Host: "b.example.test", Upstream: "site-b.default.svc:8080"}},
	})), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, an, "apply", "-f", manifest)
	kubectl(t, an, "rollout", "status", "deployment/caddy", "--timeout=120s")
	defer func() {
		if t.Failed() {
			out, _ := kubectlErr(an, "logs", "deployment/caddy", "--tail", "40")
			t.Logf("caddy's log, last lines:\n%s", out)
		}
	}()
	kubectl(t, an, "wait", "--for=condition=Ready", "pod/site-a", "pod/site-b", "--timeout=120s")
	root, err := acme.Root(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(dir, "pebble-root.pem")
	if err := os.WriteFile(rootFile, []byte(root), 0o644); err != nil {
		t.Fatal(err)
	}
	visitor := w.publicHost("visitor")
	curl := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
		defer cancel()
		out, err := visitor.Run(ctx, "curl", append([]string{"-sS", "--max-time", "15"}, args...)...)
		return strings.TrimSpace(out), err
	}
	began := time.Now()
	for _, c := range []struct{ host, ip, want string }{
		{"a.example.test", v4.String(), "site-a " + visitor.IPv4.String()},
		{"b.example.test", v4.String(), "site-b " + visitor.IPv4.String()},
		{"a.example.test", "[" + v6.String() + "]", "site-a " + visitor.IPv6.String()},
	} {
		eventually(t, 3*time.Minute, func() error {
			out, err := curl("--cacert", rootFile, "--resolve", c.host+":443:"+c.ip, "https://"+c.host+"/whoami")
			if err != nil || out != c.want {
				return fmt.Errorf("curl https://%s/whoami at %s: %q %v, want %q", c.host, c.ip, out, err, c.want)
			}
			return nil
		})
	}
	t.Logf("both sites over HTTPS with Pebble's certificates, the visitor's address seen by the sites, %s after Caddy started", time.Since(began).Round(time.Second))
	out, err := curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--resolve", "a.example.test:80:"+v4.String(), "http://a.example.test/whoami")
	if err != nil || out != "308 https://a.example.test/whoami" {
		t.Errorf("http://a.example.test/whoami: %q %v, want a 308 redirect to https", out, err)
	}

	// Renewal: Pebble's certificates last 2 minutes; Caddy renews in the
	// last third of their life, looking every 10 s.
	serial := func() (string, error) {
		ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
		defer cancel()
		out, err := visitor.Run(ctx, "sh", "-c", "openssl s_client -connect "+v4.String()+":443 -servername a.example.test </dev/null 2>/dev/null | openssl x509 -noout -serial")
		return strings.TrimSpace(out), err
	}
	first, err := serial()
	if err != nil || !strings.HasPrefix(first, "serial=") {
		t.Fatalf("a.example.test's certificate: %q %v", first, err)
	}
	eventually(t, 3*time.Minute, func() error {
		now, err := serial()
		if err != nil || now == first {
			return fmt.Errorf("a.example.test's certificate still %s (%v)", now, err)
		}
		return nil
	})
	t.Logf("a.example.test's certificate renewed (%s → %s)", first, mustSerial(serial))
	if out, err := curl("--cacert", rootFile, "--resolve", "a.example.test:443:"+v4.String(), "https://a.example.test/whoami"); err != nil || !strings.HasPrefix(out, "site-a ") {
		t.Errorf("after the renewal: %q %v", out, err)
	}
}

func mustSerial(f func() (string, error)) string {
	s, _ := f()
	return s
}

// servedBy waits until node n's status lists n entries of a published
// Service.
func servedBy(n *node, service string, want int) error {
	st, _, err := n.status()
	if err != nil {
		return err
	}
	got := 0
	for _, p := range st.Kubernetes.Published {
		if p.Service == service {
			got++
		}
	}
	if got != want {
		return fmt.Errorf("%s publishes %d addresses and ports of %s, want %d", n.Name, got, service, want)
	}
	return nil
}
