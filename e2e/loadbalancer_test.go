package e2e

import (
	"context"
	"fmt"
	"github.com/hepto-net/hepto/localapi"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hepto-net/hepto/lab"
)

// checkLoadBalancer: Services of type LoadBalancer whose only pod is in
// the symmetric-NAT home get the anchor's public IPv4 and IPv6 in their
// status, and a host on the lab's Internet gets the pod's answers there:
// HTTP through kube-proxy (IPv4) and hepto's proxy (IPv6); with the PROXY
// protocol, the pod sees the visitor's address; UDP the same way. A
// Service on the anchor's own ports, or on one an older Service has, is
// refused, saying why. The anchor's status and metrics count them.
func checkLoadBalancer(t *testing.T, k *kubeCluster) {
	t.Helper()
	an := k.an
	v4, v6 := an.Host.IPv4.String(), an.Host.IPv6.String()
	visitor := k.w.publicHost("visitor")
	bin := filepath.Join(filepath.Dir(k.archive), "web")
	ask := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(k.w.ctx, 10*time.Second)
		defer cancel()
		out, err := visitor.Run(ctx, bin, args...)
		return strings.TrimSpace(out), err
	}

	// Pods in home-b: an HTTP server behind the PROXY protocol, a UDP echo.
	for name, cmd := range map[string]string{"proxied-home-b": "serve-proxy :8081", "udp-home-b": "udp-echo :5353"} {
		kubectl(t, an, append([]string{"run", name, "--image", webImage, "--image-pull-policy", "Never",
			"--overrides", `{"spec":{"nodeName":"home-b"}}`, "--command", "--", "/web"}, strings.Fields(cmd)...)...)
	}
	kubectl(t, an, "expose", "pod", "web-home-b", "--name", "published", "--type", "LoadBalancer", "--port", "8088", "--target-port", "8080")
	kubectl(t, an, "wait", "--for=condition=Ready", "pod/proxied-home-b", "pod/udp-home-b", "--timeout=120s")
	kubectl(t, an, "expose", "pod", "proxied-home-b", "--name", "proxied", "--type", "LoadBalancer", "--port", "8089", "--target-port", "8081")
	kubectl(t, an, "annotate", "service", "proxied", "hepto.net/proxy-protocol=v2")
	kubectl(t, an, "expose", "pod", "udp-home-b", "--name", "game", "--type", "LoadBalancer", "--protocol", "UDP", "--port", "5300", "--target-port", "5353")

	// The status: the anchor's two addresses; IPv6 through hepto's proxy
	// (the Services are IPv4 only), everything through it with PROXY.
	for svc, want := range map[string]string{
		"published": v4 + "=VIP " + v6 + "=Proxy",
		"game":      v4 + "=VIP " + v6 + "=Proxy",
		"proxied":   v4 + "=Proxy " + v6 + "=Proxy",
	} {
		eventually(t, 30*time.Second, func() error {
			got := strings.TrimSpace(kubectl(t, an, "get", "service", svc, "-o", `jsonpath={range .status.loadBalancer.ingress[*]}{.ip}={.ipMode} {end}`))
			if got != want {
				return fmt.Errorf("%s's load-balancer addresses %q, want %q", svc, got, want)
			}
			return nil
		})
	}

	began := time.Now()
	for _, ip := range []string{v4, v6} {
		url := "http://" + net.JoinHostPort(ip, "8088") + "/"
		eventually(t, 30*time.Second, func() error {
			if out, err := ask("get", url); err != nil || out != "web-home-b" {
				return fmt.Errorf("visitor → %s: %q %v, want web-home-b", url, out, err)
			}
			return nil
		})
	}
	t.Logf("a visitor on the Internet gets web-home-b's page at the anchor's IPv4 and IPv6, %s after the Service", time.Since(began).Round(time.Millisecond))

	// With the PROXY protocol, the pod sees the visitor's own address.
	for ip, from := range map[string]string{v4: visitor.IPv4.String(), v6: visitor.IPv6.String()} {
		url := "http://" + net.JoinHostPort(ip, "8089") + "/whoami"
		eventually(t, 30*time.Second, func() error {
			if out, err := ask("get", url); err != nil || out != "proxied-home-b "+from {
				return fmt.Errorf("visitor → %s: %q %v, want the pod to see the visitor, %s", url, out, err, from)
			}
			return nil
		})
	}
	t.Logf("with the PROXY protocol, the pod in home-b sees the visitor's %s and %s", visitor.IPv4, visitor.IPv6)

	// UDP, on both addresses.
	for _, ip := range []string{v4, v6} {
		addr := net.JoinHostPort(ip, "5300")
		eventually(t, 30*time.Second, func() error {
			if out, err := ask("udp", addr, "ping"); err != nil || !strings.HasPrefix(out, "udp-home-b ") || !strings.HasSuffix(out, " ping") {
				return fmt.Errorf("visitor → udp %s: %q %v, want udp-home-b's echo", addr, out, err)
			}
			return nil
		})
	}

	// The anchor says what it publishes, with the traffic.
	eventually(t, 30*time.Second, func() error {
		st, _, err := an.status()
		if err != nil {
			return err
		}
		got := map[string]localapi.Published{}
		for _, p := range st.Kubernetes.Published {
			got[p.Service+" "+p.Address+" "+p.Mode] = p
		}
		for _, want := range []string{
			"default/published " + v4 + ":8088 vip", "default/published [" + v6 + "]:8088 proxy",
			"default/proxied " + v4 + ":8089 proxy", "default/game " + v4 + ":5300 vip", "default/game [" + v6 + "]:5300 proxy",
		} {
			p, ok := got[want]
			if !ok {
				return fmt.Errorf("anchor's status: %s not among what it publishes: %v", want, slices.Sorted(maps.Keys(got)))
			}
			if p.Connections == 0 || p.BytesIn == 0 || p.BytesOut == 0 {
				return fmt.Errorf("anchor's status: %s: no traffic counted: %+v", want, p)
			}
		}
		return nil
	})
	if out, err := an.Hepto("status"); err != nil || !strings.Contains(out, "default/proxied") {
		t.Errorf("hepto status on the anchor does not list what it publishes (%v):\n%s", err, out)
	}
	// The same counts in the metrics, kube-proxy's (nftables) and hepto's proxy's.
	metrics := k.w.fetch(an.Host, "http://127.0.0.1:9469/metrics")
	for _, want := range []string{
		`hepto_published_connections_total{address="` + v4 + `:8088",protocol="tcp",service="default/published"}`,
		`hepto_published_bytes_total{address="` + v4 + `:8089",direction="in",protocol="tcp",service="default/proxied"}`,
	} {
		if !metricPositive(metrics, want) {
			t.Errorf("metrics: no positive %s", want)
		}
	}
	checkExposure(t, an, bin, visitor, []string{v4 + " 8088", v4 + " 8089", v6 + " 8088", v6 + " 8089"}, []string{v6 + " 5300"})

	// A newer Service on the same port is not published, and says why;
	// the older keeps it.
	kubectl(t, an, "expose", "pod", "web-home-a", "--name", "second", "--type", "LoadBalancer", "--port", "8088", "--target-port", "8080")
	refusedWith(t, an, "second", "PortTaken")
	if out, err := ask("get", "http://"+net.JoinHostPort(v4, "8088")+"/"); err != nil || out != "web-home-b" {
		t.Errorf("with a newer Service on its port, the visitor gets %q (%v), want web-home-b's page still", out, err)
	}
	// The anchor's own ports: its WireGuard port, STUN and TURN's.
	kubectl(t, an, "expose", "pod", "web-home-b", "--name", "wireguard", "--type", "LoadBalancer", "--protocol", "UDP", "--port", "51820", "--target-port", "8080")
	kubectl(t, an, "expose", "pod", "web-home-b", "--name", "stun", "--type", "LoadBalancer", "--port", "3478", "--target-port", "8080")
	refusedWith(t, an, "wireguard", "PortReserved")
	refusedWith(t, an, "stun", "PortReserved")
	kubectl(t, an, "delete", "service", "published", "second", "wireguard", "stun", "proxied", "game")
	kubectl(t, an, "delete", "pod", "proxied-home-b", "udp-home-b", "--wait=false")
}

// refusedWith waits for a Service to be refused for reason, without
// addresses and with an event.
func refusedWith(t *testing.T, an *node, svc, reason string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		got := kubectl(t, an, "get", "service", svc, "-o", "jsonpath={.status.conditions[?(@.type==\"Published\")].reason} {.status.loadBalancer.ingress}")
		if strings.TrimSpace(got) != reason {
			return fmt.Errorf("Service %s: %q, want refused (%s) without addresses", svc, got, reason)
		}
		return nil
	})
	if ev := kubectl(t, an, "get", "events", "--field-selector", "involvedObject.name="+svc+",reason="+reason, "-o", "name"); strings.TrimSpace(ev) == "" {
		t.Errorf("no %s event on the refused Service %s", reason, svc)
	}
}

// TestPublishedOnTwoAnchors: with two anchors running Kubernetes, a
// Service is published on both, and one naming an anchor on that one
// only; a visitor gets the page through either; when one anchor stops,
// the other keeps serving and the stopped one leaves the status within
// 30 s.
func TestPublishedOnTwoAnchors(t *testing.T) {
	// The anchor keeps 49152-49999 (UDP) for Services; anchor2 the
	// default relay range.
	k := startKube(t, kubeOptions{secondAnchor: true, secondAnchorKube: true, homeIPv6: true,
		flags: func(*world) []string { return []string{"--relay-ports", "50000-65535"} }})
	an, an2 := k.an, k.an2
	eventually(t, 2*time.Minute, func() error { return allReady(an, "anchor", "anchor2", "home-a", "home-b") })
	kubectl(t, an, "run", "web-home-b", "--image", webImage, "--image-pull-policy", "Never",
		"--overrides", `{"spec":{"nodeName":"home-b"}}`, "--command", "--", "/web", "serve")
	kubectl(t, an, "wait", "--for=condition=Ready", "pod/web-home-b", "--timeout=120s")
	kubectl(t, an, "expose", "pod", "web-home-b", "--name", "both", "--type", "LoadBalancer", "--port", "80", "--target-port", "8080")
	kubectl(t, an, "expose", "pod", "web-home-b", "--name", "second-only", "--type", "LoadBalancer", "--port", "81", "--target-port", "8080")
	kubectl(t, an, "annotate", "service", "second-only", "hepto.net/anchors=anchor2")
	addrs := func(svc string) string {
		return strings.TrimSpace(kubectl(t, an, "get", "service", svc, "-o", `jsonpath={.status.loadBalancer.ingress[*].ip}`))
	}
	a1, a2 := an.Host, an2.Host
	for svc, want := range map[string]string{
		"both":        strings.Join([]string{a1.IPv4.String(), a2.IPv4.String(), a1.IPv6.String(), a2.IPv6.String()}, " "),
		"second-only": a2.IPv4.String() + " " + a2.IPv6.String(),
	} {
		eventually(t, time.Minute, func() error {
			if got := addrs(svc); got != want {
				return fmt.Errorf("%s's addresses %q, want %q", svc, got, want)
			}
			return nil
		})
	}
	visitor := k.w.publicHost("visitor")
	bin := filepath.Join(filepath.Dir(k.archive), "web")
	get := func(host lab.Host, v6 bool, port string) error {
		ip := host.IPv4.String()
		if v6 {
			ip = host.IPv6.String()
		}
		ctx, cancel := context.WithTimeout(k.w.ctx, 10*time.Second)
		defer cancel()
		url := "http://" + net.JoinHostPort(ip, port) + "/"
		if out, err := visitor.Run(ctx, bin, "get", url); err != nil || strings.TrimSpace(out) != "web-home-b" {
			return fmt.Errorf("visitor → %s: %q %v, want web-home-b", url, out, err)
		}
		return nil
	}
	for _, c := range []struct {
		host *lab.Host
		v6   bool
		port string
	}{{a1, false, "80"}, {a2, false, "80"}, {a1, true, "80"}, {a2, true, "80"}, {a2, false, "81"}, {a2, true, "81"}} {
		eventually(t, 30*time.Second, func() error { return get(*c.host, c.v6, c.port) })
	}
	t.Log("the page through either anchor, IPv4 and IPv6; the Service naming anchor2 through it")

	// IPv6 straight to a home: home-a's global address, once its box lets
	// the port in.
	kubectl(t, an, "run", "web-home-a", "--image", webImage, "--image-pull-policy", "Never",
		"--overrides", `{"spec":{"nodeName":"home-a"}}`, "--command", "--", "/web", "serve")
	kubectl(t, an, "wait", "--for=condition=Ready", "pod/web-home-a", "--timeout=120s")
	kubectl(t, an, "expose", "pod", "web-home-a", "--name", "at-home", "--type", "LoadBalancer", "--port", "8090", "--target-port", "8080")
	kubectl(t, an, "annotate", "service", "at-home", "hepto.net/home-ipv6=true", "hepto.net/anchors=anchor")
	homeV6 := k.a.Host.IPv6
	eventually(t, time.Minute, func() error {
		if got, want := addrs("at-home"), a1.IPv4.String()+" "+a1.IPv6.String()+" "+homeV6.String(); got != want {
			return fmt.Errorf("at-home's addresses %q, want the anchor's and home-a's IPv6: %q", got, want)
		}
		return nil
	})
	homeURL := "http://" + net.JoinHostPort(homeV6.String(), "8090") + "/"
	ctx, cancel := context.WithTimeout(k.w.ctx, 5*time.Second)
	if out, err := visitor.Run(ctx, bin, "get", homeURL); err == nil {
		t.Errorf("home-a's box lets %s in before it was told to: %q", homeURL, out)
	}
	cancel()
	if err := k.homeA.AllowIPv6(homeV6, "tcp", 8090); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(k.w.ctx, 10*time.Second)
		defer cancel()
		if out, err := visitor.Run(ctx, bin, "get", homeURL); err != nil || strings.TrimSpace(out) != "web-home-a" {
			return fmt.Errorf("visitor → %s (home-a's IPv6): %q %v", homeURL, out, err)
		}
		return nil
	})
	t.Logf("a visitor gets web-home-a's page straight at home-a's IPv6 %s, once the box lets the port in", homeV6)

	// A UDP port of TURN's range on anchor2, not on the anchor: refused
	// on both, published when the Service names the anchor.
	kubectl(t, an, "expose", "pod", "web-home-b", "--name", "game", "--type", "LoadBalancer", "--protocol", "UDP", "--port", "49999", "--target-port", "8080")
	refusedWith(t, an, "game", "PortReserved")
	kubectl(t, an, "annotate", "service", "game", "hepto.net/anchors=anchor")
	eventually(t, 30*time.Second, func() error {
		if got, want := addrs("game"), a1.IPv4.String()+" "+a1.IPv6.String(); got != want {
			return fmt.Errorf("game on 49999/udp naming the anchor (relays from 50000): addresses %q, want %q", got, want)
		}
		return nil
	})

	an2.stop(syscall.SIGKILL)
	stopped := time.Now()
	want := a1.IPv4.String() + " " + a1.IPv6.String()
	eventually(t, time.Minute, func() error {
		if got := addrs("both"); got != want {
			return fmt.Errorf("with anchor2 stopped, both's addresses %q, want anchor's alone %q", got, want)
		}
		return nil
	})
	gone := time.Since(stopped)
	t.Logf("anchor2 killed: it left the Service's addresses after %s", gone.Round(100*time.Millisecond))
	if gone > 30*time.Second {
		t.Errorf("anchor2 left the status %s after it stopped, want ≤ 30 s", gone.Round(time.Second))
	}
	if err := get(*a1, false, "80"); err != nil {
		t.Errorf("with anchor2 stopped, the anchor: %v", err)
	}
	refusedWith(t, an, "second-only", "NoAnchor")
}

// metricPositive tells whether a sample of the exposition text has a
// value above zero.
func metricPositive(text, series string) bool {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && f > 0
		}
	}
	return false
}
