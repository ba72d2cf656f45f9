package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkLoadBalancer: a Service of type LoadBalancer whose only pod is in
// the symmetric-NAT home gets the anchor's public address, and a host on
// the lab's Internet gets the pod's page there; a Service on the anchor's
// own UDP port, or on one an older Service has, is refused, saying why.
func checkLoadBalancer(t *testing.T, k *kubeCluster) {
	t.Helper()
	an := k.an
	kubectl(t, an, "expose", "pod", "web-home-b", "--name", "published", "--type", "LoadBalancer", "--port", "8088", "--target-port", "8080")
	anchorIP := an.Host.IPv4.String()
	eventually(t, 30*time.Second, func() error {
		got := strings.TrimSpace(kubectl(t, an, "get", "service", "published", "-o", "jsonpath={.status.loadBalancer.ingress[*].ip}"))
		if got != anchorIP {
			return fmt.Errorf("published's load-balancer addresses %q, want the anchor's %s", got, anchorIP)
		}
		return nil
	})
	visitor := k.w.publicHost("visitor")
	bin := filepath.Join(filepath.Dir(k.archive), "web")
	url := "http://" + net.JoinHostPort(anchorIP, "8088") + "/"
	began := time.Now()
	eventually(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(k.w.ctx, 10*time.Second)
		defer cancel()
		out, err := visitor.Run(ctx, bin, "get", url)
		if err != nil || strings.TrimSpace(out) != "web-home-b" {
			return fmt.Errorf("visitor → %s: %q %v, want web-home-b", url, out, err)
		}
		return nil
	})
	t.Logf("a visitor on the Internet gets web-home-b's page at the anchor's %s, %s after the Service", url, time.Since(began).Round(time.Millisecond))

	// A newer Service on the same port is not published, and says why;
	// the older keeps it.
	kubectl(t, an, "expose", "pod", "web-home-a", "--name", "second", "--type", "LoadBalancer", "--port", "8088", "--target-port", "8080")
	eventually(t, 30*time.Second, func() error {
		got := kubectl(t, an, "get", "service", "second", "-o", "jsonpath={.status.conditions[?(@.type==\"Published\")].reason} {.status.loadBalancer.ingress}")
		if strings.TrimSpace(got) != "PortTaken" {
			return fmt.Errorf("a newer Service on 8088: %q, want refused (PortTaken) without addresses", got)
		}
		return nil
	})
	if out, err := visitor.Run(k.w.ctx, bin, "get", url); err != nil || strings.TrimSpace(out) != "web-home-b" {
		t.Errorf("with a newer Service on its port, the visitor gets %q (%v), want web-home-b's page still", out, err)
	}

	kubectl(t, an, "expose", "pod", "web-home-b", "--name", "wireguard", "--type", "LoadBalancer", "--protocol", "UDP", "--port", "51820", "--target-port", "8080")
	eventually(t, 30*time.Second, func() error {
		got := kubectl(t, an, "get", "service", "wireguard", "-o", "jsonpath={.status.conditions[?(@.type==\"Published\")].reason} {.status.loadBalancer.ingress}")
		if strings.TrimSpace(got) != "PortReserved" {
			return fmt.Errorf("a Service on the anchor's WireGuard port: %q, want refused (PortReserved) without addresses", got)
		}
		return nil
	})
	if ev := kubectl(t, an, "get", "events", "--field-selector", "involvedObject.name=wireguard,reason=PortReserved", "-o", "name"); strings.TrimSpace(ev) == "" {
		t.Error("no PortReserved event on the refused Service")
	}
	kubectl(t, an, "delete", "service", "published", "second", "wireguard")
}
