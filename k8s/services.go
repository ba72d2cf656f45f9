package k8s

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hepto-net/hepto/dns/kubewatch"
	"github.com/hepto-net/hepto/k8s/component"
	"github.com/hepto-net/hepto/k8s/nodecert"
	"github.com/hepto-net/hepto/k8s/proxy"
)

// runProxy runs kube-proxy once the node has its certificates. Like the
// kubelet, it is not restarted in the same process (runOnce).
func (n *Node) runProxy(ctx context.Context) error {
	if err := n.certsReady.Wait(ctx); err != nil {
		n.states.Set(compProxy, component.Stopped)
		return nil
	}
	n.log.Info("kube-proxy", "mode", proxy.Mode())
	return n.runOnce(ctx, compProxy, func(ctx context.Context) error {
		return proxyRun(ctx, proxy.Options{
			Kubeconfig:   nodecert.Dir(n.layout.Certs).Path(nodecert.ProxyConfFile),
			NodeName:     n.o.NodeName,
			NodeIP:       n.o.Addresses[0],
			ClusterCIDRs: n.o.PodCIDRs,
			NodePorts:    n.o.Overlay,
		})
	})
}

// runClusterDNS feeds the node's DNS server the names of the Kubernetes
// DNS specification, with the node's DNS credentials (group hepto:dns).
func (n *Node) runClusterDNS(ctx context.Context) error {
	if err := n.certsReady.Wait(ctx); err != nil {
		return nil
	}
	cs, err := n.agentClient()
	if err != nil {
		return fmt.Errorf("cluster DNS: %w", err)
	}
	err = kubewatch.Watch(ctx, cs, n.o.DNS, n.log.With("part", "cluster-dns"))
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// agentClient is the client of the node's own agents (its DNS server, its
// network policy), with the node's DNS credentials (group hepto:dns).
func (n *Node) agentClient() (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", nodecert.Dir(n.layout.Certs).Path(nodecert.DNSConfFile))
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}
