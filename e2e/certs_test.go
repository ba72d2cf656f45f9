package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestCertificatesRenewed: with certificates that last 90 s, a control
// plane (and its kubelet) keeps working well past their end: they are
// issued again while it runs, and every component takes the new ones.
func TestCertificatesRenewed(t *testing.T) {
	w := newWorld(t)
	needKubernetesBinaries(t)
	w.c.Kubernetes = true
	t.Cleanup(func() {
		if err := w.c.RemovePods(); err != nil {
			t.Errorf("remove pods: %v", err)
		}
	})
	archive := buildWebImage(t, webImage)
	host := w.publicHost("anchor")
	an := w.node("anchor", host)
	if _, err := an.Hepto("init", "--cluster", w.c.Name, "--name", "anchor", "--endpoint", host.IPv4.String()+":51820"); err != nil {
		t.Fatal(err)
	}
	placeImage(t, an.State, archive)
	const validity = 90 * time.Second
	an.start("--cert-validity", validity.String())
	start := time.Now()
	an.waitSocket()
	eventually(t, 3*time.Minute, func() error { return allReady(an, "anchor") })
	st, _, err := an.status()
	if err != nil {
		t.Fatal(err)
	}
	first := servingNotAfter(t, an, st.OverlayIPs[0])
	if first.After(start.Add(validity + 10*time.Second)) {
		t.Fatalf("serving certificate valid until %s: the validity was not shortened", first)
	}
	time.Sleep(time.Until(start.Add(validity + 20*time.Second)))

	// Past the first certificates' end.
	if now := servingNotAfter(t, an, st.OverlayIPs[0]); !now.After(first) {
		t.Fatalf("the apiserver still serves its first certificate (until %s)", first)
	}
	untaint(t, an, "anchor") // a cluster of one node runs its pods on it
	kubectl(t, an, "create", "deployment", "renewed", "--image", webImage, "--", "/web", "serve")
	// controller-manager (ReplicaSet, Pod), scheduler, kubelet: all with
	// renewed credentials.
	kubectl(t, an, "rollout", "status", "deployment/renewed", "--timeout=90s")
	eventually(t, time.Minute, func() error {
		out, err := kubectlErr(an, "get", "lease", "-n", "kube-node-lease", "anchor", "-o", "jsonpath={.spec.renewTime}")
		if err != nil {
			return err
		}
		renewed, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(out))
		if err != nil || time.Since(renewed) > 15*time.Second {
			return fmt.Errorf("kubelet's lease renewed at %q", out)
		}
		return nil
	})
	t.Logf("%s after the start, with certificates of %s: API, controller-manager, scheduler and kubelet at work", time.Since(start).Round(time.Second), validity)
}

// servingNotAfter is the end of the certificate the apiserver presents.
func servingNotAfter(t *testing.T, n *node, ip string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(n.w.ctx, 10*time.Second)
	defer cancel()
	raw, err := n.Host.DialContext(ctx, "tcp", net.JoinHostPort(ip, "6443"))
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	defer c.Close()
	if err := c.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	return c.ConnectionState().PeerCertificates[0].NotAfter
}
