package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hepto-net/hepto/k8s/nodecert"
	"github.com/hepto-net/hepto/k8s/publish"
	"github.com/hepto-net/hepto/k8s/publish/ports"
	"github.com/hepto-net/hepto/localapi"
)

// runPublish serves the Services published on this node's public
// addresses (package publish), and tells the control plane those
// addresses and the ports the node keeps for itself, in its Node's
// annotations.
func (n *Node) runPublish(ctx context.Context) error {
	if err := n.certsReady.Wait(ctx); err != nil {
		return nil
	}
	cs, err := n.agentClient()
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", nodecert.Dir(n.layout.Certs).Path(nodecert.KubeconfigFile))
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	kubelet, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	go n.announce(ctx, kubelet)
	return n.publisher.Run(ctx, cs)
}

// newPublisher is the node's publisher (runPublish runs it).
func (n *Node) newPublisher() *publish.Publisher {
	return publish.New(publish.Options{Log: n.log.With("part", "publish"), Counters: n.counters()})
}

// counters counts kube-proxy's published ports when it drives nftables.
func (n *Node) counters() *publish.Counters {
	c, err := publish.NewCounters()
	if err != nil {
		n.log.Info("published ports served by kube-proxy are not counted", "err", err)
		return nil
	}
	return c
}

// announce keeps the Node's annotations in line with the node's public
// addresses, reserved ports and space for local volumes: at start (once
// the kubelet has registered the Node), then whenever they change.
func (n *Node) announce(ctx context.Context, c kubernetes.Interface) {
	said := ""
	for {
		addrs, err := publish.LocalPublicAddrs()
		wait := 30 * time.Second
		if err == nil {
			s := make([]string, len(addrs))
			for i, a := range addrs {
				s[i] = a.String()
			}
			ann := map[string]string{publish.PublicIPs: strings.Join(s, ","), publish.ReservedPorts: ports.Format(n.o.ReservedPorts)}
			if space := n.volumeSpace(); space != "" {
				ann[VolumeSpace] = space
			}
			key := ann[publish.PublicIPs] + " " + ann[publish.ReservedPorts] + " " + ann[VolumeSpace]
			if key != said {
				patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
				_, err = c.CoreV1().Nodes().Patch(ctx, n.o.NodeName, types.MergePatchType, patch, metav1.PatchOptions{})
				switch {
				case err == nil:
					said = key
					n.log.Info("node announced", "addresses", ann[publish.PublicIPs], "reserved_ports", ann[publish.ReservedPorts], "volume_space", ann[VolumeSpace])
				case apierrors.IsNotFound(err):
					wait = 5 * time.Second // not registered yet
				case ctx.Err() == nil:
					n.log.Warn("publish: cannot annotate the Node", "err", err)
					wait = 5 * time.Second
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Published lists the Service ports this node serves on its public
// addresses.
func (n *Node) Published(ctx context.Context) []localapi.Published {
	if n == nil {
		return nil
	}
	return n.publisher.Published(ctx)
}
