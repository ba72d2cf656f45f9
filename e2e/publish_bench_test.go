package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// TestBenchPublished (make bench-publish) measures a published Service
// against the same pod reached from inside the overlay, in one run: the
// request rate and latency of a small page (keep-alive connections, and a
// new connection per request), a large download, and what 1,000 open
// connections cost the anchor. The pod is in home-a (a direct path to the
// anchor; an anchor is reachable, so its paths to homes are direct).
func TestBenchPublished(t *testing.T) {
	if os.Getenv("HEPTO_BENCH_PUBLISH") == "" {
		t.Skip("a benchmark: HEPTO_BENCH_PUBLISH=1 (make bench-publish)")
	}
	k := startKube(t, kubeOptions{})
	an := k.an
	kubectl(t, an, "run", "web-home-a", "--image", webImage, "--image-pull-policy", "Never",
		"--overrides", `{"spec":{"nodeName":"home-a"}}`, "--command", "--", "/web", "serve")
	kubectl(t, an, "wait", "--for=condition=Ready", "pod/web-home-a", "--timeout=120s")
	kubectl(t, an, "expose", "pod", "web-home-a", "--name", "published", "--type", "LoadBalancer", "--port", "80", "--target-port", "8080")
	podIP := podIPs(t, an, "web-home-a")[0]
	v4, v6 := an.Host.IPv4.String(), an.Host.IPv6.String()
	visitor := k.w.publicHost("visitor")
	bin := filepath.Join(filepath.Dir(k.archive), "web")
	eventually(t, time.Minute, func() error {
		for _, ip := range []string{v4, v6} {
			if out, err := visitor.Run(k.w.ctx, bin, "get", "http://"+net.JoinHostPort(ip, "80")+"/"); err != nil || strings.TrimSpace(out) != "web-home-a" {
				return fmt.Errorf("visitor → %s: %q %v", ip, out, err)
			}
		}
		return nil
	})
	// The anchor's host runs the in-overlay client: the same WireGuard
	// link to home-a, without the Internet hop and the anchor's forwarding.
	type path struct {
		name   string
		run    func(ctx context.Context, args ...string) (string, error)
		target string
	}
	inOverlay := func(ctx context.Context, args ...string) (string, error) { return an.Host.Run(ctx, bin, args...) }
	outside := func(ctx context.Context, args ...string) (string, error) { return visitor.Run(ctx, bin, args...) }
	paths := []path{
		{"in the overlay (anchor → pod)", inOverlay, net.JoinHostPort(podIP, "8080")},
		{"through the anchor, kube-proxy (IPv4)", outside, net.JoinHostPort(v4, "80")},
		{"through the anchor, hepto's proxy (IPv6)", outside, net.JoinHostPort(v6, "80")},
	}
	cpu := func() float64 { return cpuSeconds(t, an) }
	const secs, conc = 10, 16
	var rows []string
	for _, mode := range []string{"keep-alive", "new"} {
		for _, p := range paths {
			ctx, cancel := context.WithTimeout(k.w.ctx, time.Minute)
			c0 := cpu()
			out, err := p.run(ctx, "load", "http://"+p.target+"/", strconv.Itoa(secs), strconv.Itoa(conc), mode)
			used := cpu() - c0
			cancel()
			f := strings.Fields(out)
			if err != nil || len(f) != 4 {
				t.Fatalf("%s, %s: %q %v", p.name, mode, out, err)
			}
			rps, _ := strconv.ParseFloat(f[0], 64)
			p50, _ := strconv.ParseFloat(f[1], 64)
			p99, _ := strconv.ParseFloat(f[2], 64)
			rows = append(rows, fmt.Sprintf("%s\t%s\t%.0f\t%.2f\t%.2f\t%s\t%.2f", p.name, mode, rps, p50*1000, p99*1000, f[3], used/(rps*secs)*1e6))
		}
	}
	var dl []string
	for _, p := range paths {
		ctx, cancel := context.WithTimeout(k.w.ctx, 2*time.Minute)
		out, err := p.run(ctx, "download", "http://"+p.target+"/bytes?n=268435456")
		cancel()
		f := strings.Fields(out)
		if err != nil || len(f) != 2 {
			t.Fatalf("download %s: %q %v", p.name, out, err)
		}
		n, _ := strconv.ParseFloat(f[0], 64)
		s, _ := strconv.ParseFloat(f[1], 64)
		dl = append(dl, fmt.Sprintf("%s\t%.1f MB/s", p.name, n/s/1e6))
	}
	// 1,000 open connections through each of the anchor's two ways.
	var held []string
	for _, p := range paths[1:] {
		rss0, _ := memoryMB(t, an)
		c0 := cpu()
		ctx, cancel := context.WithTimeout(k.w.ctx, time.Minute)
		proc, err := visitor.Start(ctx, filepath.Join(t.TempDir(), "hold.log"), bin, "hold", p.target, "1000", "15")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second)
		rss1, _ := memoryMB(t, an)
		used := cpu() - c0
		proc.Wait()
		cancel()
		held = append(held, fmt.Sprintf("%s\t%+.1f MB\t%.2f s", p.name, rss1-rss0, used))
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "path\tconnections\treq/s\tp50 ms\tp99 ms\terrors\tanchor CPU µs/req\n")
	for _, r := range rows {
		fmt.Fprintln(w, r)
	}
	fmt.Fprintln(w, "\ndownload (256 MiB)\trate")
	for _, r := range dl {
		fmt.Fprintln(w, r)
	}
	fmt.Fprintln(w, "\n1,000 open connections\tanchor RSS\tanchor CPU (10 s)")
	for _, r := range held {
		fmt.Fprintln(w, r)
	}
	w.Flush()
	t.Logf("published Service (%d clients, %d s each; pod in home-a):\n%s", conc, secs, b.String())
}

// cpuSeconds is the CPU time hepto has used on node n (user and system).
func cpuSeconds(t *testing.T, n *node) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.Proc.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks (USER_HZ)
}
