package daemon

import (
	"context"
	"time"

	"github.com/hepto-net/hepto/k8s/publish/ports"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/metrics"
	"github.com/hepto-net/hepto/nat"
)

// reservedPorts are the ports a node needs on its public addresses: its
// WireGuard and ICE port; an anchor's STUN and TURN port and relay ports.
func reservedPorts(self membership.Node, port uint16, relay ports.Range) []ports.Range {
	out := []ports.Range{{Proto: "udp", Min: port, Max: port}}
	if self.IsAnchor() {
		out = append(out,
			ports.Range{Proto: "udp", Min: nat.ServerPort, Max: nat.ServerPort},
			ports.Range{Proto: "tcp", Min: nat.ServerPort, Max: nat.ServerPort},
			relay)
	}
	return out
}

// publishedMetrics are the node's published ports, for a scrape.
func publishedMetrics(kube *kubeNode) []metrics.Published {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []metrics.Published
	for _, p := range kube.Published(ctx) {
		out = append(out, metrics.Published{Service: p.Service, Address: p.Address, Protocol: p.Protocol,
			Connections: p.Connections, Open: p.Open, BytesIn: p.BytesIn, BytesOut: p.BytesOut})
	}
	return out
}
