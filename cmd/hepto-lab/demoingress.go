package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/lab"
	"github.com/hepto-net/hepto/lab/cluster"
	"github.com/hepto-net/hepto/lab/ingress"
)

// demoIngress publishes a web site from the symmetric-NAT home: Caddy
// behind a LoadBalancer Service, a certificate from the lab's ACME server
// (Pebble), and a visitor on the lab's Internet fetching the page over
// HTTPS with curl.
func demoIngress(cmd *cobra.Command, l *lab.Lab, c *cluster.Cluster, anchor, home *cluster.Node, web, caddy, pebble string) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	kubectl := func(args ...string) (string, error) { return anchor.Hepto(append([]string{"kubectl"}, args...)...) }
	fmt.Fprintf(out, "\n==> publishing https://www.example.test from %s: Caddy behind a LoadBalancer Service, a certificate from the lab's ACME server\n", home.Name)
	dir := filepath.Join(c.Dir, "ingress")
	v4, v6 := anchor.Host.IPv4, anchor.Host.IPv6
	acme, err := ingress.Start(ctx, l, ingress.Options{Pebble: pebble, Web: web, Dir: dir,
		Names: map[string][]netip.Addr{"www.example.test": {v4, v6}}})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "==> acme (%s): Pebble at %s, and a DNS server: www.example.test → the anchor, %s and %s\n", acme.Host.IPv4, acme.DirURL, v4, v6)
	archive, err := ingress.CaddyArchive(caddy, dir)
	if err != nil {
		return err
	}
	if _, err := home.Hepto("images", "import", archive); err != nil {
		return fmt.Errorf("hepto images import caddy: %w", err)
	}
	if _, err := kubectl("run", "site", "--image", demoImage, "--image-pull-policy", "Never",
		"--overrides", fmt.Sprintf(`{"spec":{"nodeName":%q}}`, home.Name), "--command", "--", "/web", "serve"); err != nil {
		return err
	}
	if _, err := kubectl("expose", "pod", "site", "--port", "8080"); err != nil {
		return err
	}
	// The Service first, until the anchor serves it: Caddy's first
	// request for a certificate then succeeds.
	svcFile := filepath.Join(dir, "caddy-service.yaml")
	if err := os.WriteFile(svcFile, []byte(ingress.CaddyService), 0o644); err != nil {
		return err
	}
	if _, err := kubectl("apply", "-f", svcFile); err != nil {
		return err
	}
	if err := cluster.Eventually(time.Minute, func() error {
		st, _, err := anchor.Status()
		if err != nil {
			return err
		}
		n := 0
		for _, p := range st.Kubernetes.Published {
			if p.Service == "default/caddy" {
				n++
			}
		}
		if n < 4 {
			return fmt.Errorf("the anchor serves %d of the Service's 4 addresses and ports", n)
		}
		return nil
	}); err != nil {
		return err
	}
	manifest := filepath.Join(dir, "caddy.yaml")
	if err := os.WriteFile(manifest, []byte(ingress.CaddyManifests(ingress.CaddyOptions{
		ACME: acme, Email: "webmaster@example.test", Overlay: "10.77.0.0/16", Node: home.Name,
		Sites: []ingress.Site{{Host: "www.example.test", Upstream: "site.default.svc:8080"}},
	})), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "$ hepto kubectl apply -f %s    # ConfigMap (Caddyfile), Deployment, Service type LoadBalancer with the PROXY protocol\n", manifest)
	if _, err := kubectl("apply", "-f", manifest); err != nil {
		return err
	}
	if _, err := kubectl("rollout", "status", "deployment/caddy", "--timeout=120s"); err != nil {
		return err
	}
	svc, err := kubectl("get", "service", "caddy", "-o", "wide")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n$ hepto kubectl get service caddy -o wide\n%s", svc)
	root, err := acme.Root(ctx)
	if err != nil {
		return err
	}
	rootFile := filepath.Join(dir, "pebble-root.pem")
	if err := os.WriteFile(rootFile, []byte(root), 0o644); err != nil {
		return err
	}
	visitor, err := l.AddPublicHost("visitor")
	if err != nil {
		return err
	}
	args := []string{"-sS", "--max-time", "15", "--cacert", rootFile, "--resolve", "www.example.test:443:" + v4.String(), "https://www.example.test/whoami"}
	var page string
	err = cluster.Eventually(3*time.Minute, func() error {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		page, err = visitor.Run(cctx, "curl", args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("curl https://www.example.test/: %w", err)
	}
	fmt.Fprintf(out, "\n$ curl %s    # on a visitor's host on the Internet, %s\n%s", strings.Join(args, " "), visitor.IPv4, page)
	fmt.Fprintf(out, "(the site runs in %s, behind a symmetric NAT; it sees the visitor's address through the PROXY protocol)\n", home.Name)
	return nil
}
