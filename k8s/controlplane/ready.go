package controlplane

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
)

var loopbackAddrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}

// pollInterval paces the readiness probes.
const pollInterval = 500 * time.Millisecond

// Ready waits until the apiserver answers /readyz with the admin's
// credentials, or ctx ends.
func (c *ControlPlane) Ready(ctx context.Context) error {
	return c.waitReadyz(ctx)
}

func (c *ControlPlane) waitReadyz(ctx context.Context) error {
	cfg := c.AdminConfig()
	cfg.Timeout = 5 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		var status int
		client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).StatusCode(&status)
		if status == http.StatusOK {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// watchHealthz marks a component running once its /healthz on loopback
// answers (served with a certificate from the cluster CA).
func (c *ControlPlane) watchHealthz(ctx context.Context, name string, port int) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.pki.Cluster.Pool()}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	url := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + "/healthz"
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				c.states.set(name, Running)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
