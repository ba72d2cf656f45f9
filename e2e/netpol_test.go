package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkNetworkPolicy: NetworkPolicy across homes, both families, both
// directions, enforced by each end's node. The pods web-NODE (label
// run=web-NODE) answer on 8080; ips are their addresses.
func checkNetworkPolicy(t *testing.T, cp *node, nodes []*node, ips map[string][]string) {
	t.Helper()
	for _, n := range nodes {
		st, _, err := n.status()
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Kubernetes.Components["network-policy"]; got != "running" {
			t.Errorf("%s: network-policy %q, want running", n.Name, got)
		}
	}
	apply := func(name, manifest string) {
		t.Helper()
		f := filepath.Join(t.TempDir(), name+".yaml")
		if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		kubectl(t, cp, "apply", "-f", f)
	}
	// reach tells whether from's pod gets to's page (its name) on every
	// address, and within: policies take effect within seconds.
	expect := func(from, to string, want bool) {
		t.Helper()
		for _, ip := range ips[to] {
			url := "http://" + net.JoinHostPort(ip, "8080") + "/"
			began := time.Now()
			eventually(t, 30*time.Second, func() error {
				out, err := kubectlErr(cp, "exec", "web-"+from, "--", "/web", "get", url)
				if got := err == nil && strings.TrimSpace(out) == "web-"+to; got != want {
					return fmt.Errorf("web-%s → %s answers: %v, want %v (%v %q)", from, url, got, want, err, out)
				}
				return nil
			})
			t.Logf("web-%s → %s answers: %v, after %s", from, url, want, time.Since(began).Round(time.Millisecond))
		}
	}
	// Ingress, enforced by home-b's node: only the anchor's pod may come in.
	apply("ingress", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-anchor-in}
spec:
  podSelector: {matchLabels: {run: web-home-b}}
  ingress:
  - from: [{podSelector: {matchLabels: {run: web-anchor}}}]
    ports: [{port: 8080}]
`)
	expect("home-a", "home-b", false)
	expect("anchor", "home-b", true)
	expect("home-b", "home-a", true) // the replies of its own connections pass
	kubectl(t, cp, "delete", "networkpolicy", "only-anchor-in")
	expect("home-a", "home-b", true)

	// Egress, enforced by home-a's node: only to home-b's pod's addresses
	// (ipBlock), on 8080.
	var blocks []string
	for _, ip := range ips["home-b"] {
		bits := 32
		if strings.Contains(ip, ":") {
			bits = 128
		}
		blocks = append(blocks, fmt.Sprintf("{ipBlock: {cidr: %s/%d}}", ip, bits))
	}
	apply("egress", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-to-home-b}
spec:
  podSelector: {matchLabels: {run: web-home-a}}
  policyTypes: [Egress]
  egress:
  - to: [`+strings.Join(blocks, ", ")+`]
    ports: [{protocol: TCP, port: 8080}]
`)
	expect("home-a", "anchor", false)
	expect("home-a", "home-b", true)
	expect("anchor", "home-a", true) // egress only: ingress stays open
	kubectl(t, cp, "delete", "networkpolicy", "only-to-home-b")
	expect("home-a", "anchor", true)
}
