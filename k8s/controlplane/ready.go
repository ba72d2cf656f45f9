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

	"github.com/hepto-net/hepto/k8s/component"
	"k8s.io/client-go/kubernetes"
)

var loopbackAddrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}

// Probe pacing: often until a component first answers, then seldom.
const (
	pollInterval  = 500 * time.Millisecond
	watchInterval = 10 * time.Second
	probeTimeout  = 5 * time.Second
)

// probe checks a component once: nil when healthy.
type probe func(ctx context.Context) error

// Ready waits until the apiserver answers /readyz with the admin's
// credentials, or ctx ends.
func (c *ControlPlane) Ready(ctx context.Context) error {
	if err := c.prepared.Wait(ctx); err != nil {
		return err
	}
	p, err := c.readyzProbe()
	if err != nil {
		return err
	}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for p(ctx) != nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func (c *ControlPlane) readyzProbe() (probe, error) {
	cfg := c.AdminConfig()
	cfg.Timeout = probeTimeout
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	return func(ctx context.Context) error {
		var status int
		res := client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).StatusCode(&status)
		if status == http.StatusOK {
			return nil
		}
		if status == 0 {
			return res.Error()
		}
		return fmt.Errorf("/readyz answered %d", status)
	}, nil
}

// healthzProbe checks a component's /healthz on loopback, served with a
// certificate from the cluster CA.
func (c *ControlPlane) healthzProbe(port int) probe {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.pki.Cluster.Pool()}, DisableKeepAlives: true}
	client := &http.Client{Transport: tr, Timeout: probeTimeout}
	url := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + "/healthz"
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/healthz answered %d", resp.StatusCode)
		}
		return nil
	}
}

// watch keeps a running component's state up to date until ctx ends: it
// stays "starting" until the first healthy probe (then onReady runs), and
// then reads "running", or "failed: REASON" while probes fail.
func (c *ControlPlane) watch(ctx context.Context, name string, p probe, onReady func()) {
	ready := false
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		err := p(ctx)
		switch {
		case err == nil:
			c.states.SetLive(ctx, name, component.Running)
			if !ready {
				ready = true
				t.Reset(watchInterval)
				if onReady != nil {
					onReady()
				}
			}
		case ready:
			c.states.SetLive(ctx, name, "failed: "+err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
