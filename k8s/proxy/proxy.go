// Package proxy runs kube-proxy in hepto's process: Services on every
// Kubernetes node, in nftables mode (iptables where nft is missing), with
// node ports on the overlay addresses only.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"

	"github.com/hepto-net/hepto/k8s/proxy/flags"
)

// Options configure a node's kube-proxy.
type Options struct {
	Kubeconfig   string         // kube-proxy's credentials (system:kube-proxy)
	NodeName     string         // the Kubernetes node name
	NodeIP       netip.Addr     // the node's overlay IPv4 address
	ClusterCIDRs []netip.Prefix // the cluster's pod ranges: traffic from elsewhere is masqueraded
	// NodePorts are the prefixes whose addresses answer NodePorts: the
	// overlay's, so that a home's LAN and the Internet see none.
	NodePorts []netip.Prefix
}

// Mode is the proxy mode this machine supports: nftables when the nft
// program is there (kube-proxy drives the kernel through it), else
// iptables.
func Mode() string {
	if _, err := exec.LookPath("nft"); err == nil {
		return "nftables"
	}
	return "iptables"
}

// args are kube-proxy's flags for o.
func args(o Options) []string {
	return flags.Args(o.Kubeconfig, o.NodeName, o.NodeIP.String(), Mode(), join(o.ClusterCIDRs), join(o.NodePorts))
}

func join(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// ErrRanOnce is Run's answer after a first kube-proxy ended: like the
// kubelet, it registers process-wide state.
var ErrRanOnce = errors.New("kube-proxy ran once in this process: restart hepto to start it again")

var ran atomic.Bool

// Run runs kube-proxy until ctx ends, once per process.
func Run(ctx context.Context, o Options) error {
	if ran.Swap(true) {
		return ErrRanOnce
	}
	opts := proxyapp.NewOptions()
	fs := pflag.NewFlagSet("kube-proxy", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	opts.AddFlags(fs)
	if err := fs.Parse(args(o)); err != nil {
		return fmt.Errorf("kube-proxy flags: %w", err)
	}
	if err := opts.Complete(fs); err != nil {
		return fmt.Errorf("kube-proxy: %w", err)
	}
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("kube-proxy: %w", err)
	}
	ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithValues("component", "kube-proxy"))
	done := make(chan error, 1)
	// Options.Run returns only on a failure: on ctx's end it keeps
	// waiting, so hepto returns without it.
	go func() { done <- opts.Run(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			err = errors.New("kube-proxy stopped unexpectedly")
		}
		return err
	case <-ctx.Done():
		return nil
	}
}
