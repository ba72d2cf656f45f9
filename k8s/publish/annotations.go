// Package publish carries a node's side of Services published to the
// Internet (type LoadBalancer): what the node tells the control plane
// about itself, and the proxy that serves the addresses whose ipMode is
// Proxy (the PROXY protocol, IPv6 for an IPv4 Service); kube-proxy serves
// the others.
package publish

// Annotations a Service may carry.
const (
	// Anchors names the anchors to publish on, comma-separated (default:
	// every anchor).
	Anchors = "hepto.net/anchors"
	// ProxyProtocol "v2": hepto's proxy carries the Service's TCP ports
	// and sends the PROXY protocol v2 header first, so that the pod learns
	// the visitor's address wherever it runs.
	ProxyProtocol = "hepto.net/proxy-protocol"
	// HomeIPv6 "true": published also on the global IPv6 addresses of the
	// nodes that run its pods.
	HomeIPv6 = "hepto.net/home-ipv6"
)

// Annotations hepto sets on its own Node.
const (
	// PublicIPs are the node's addresses reachable from the Internet: an
	// anchor's, and a home's global IPv6.
	PublicIPs = "hepto.net/public-ips"
	// ReservedPorts are the ports the node needs on those addresses
	// itself ("51820/udp,3478/udp,49152-65535/udp").
	ReservedPorts = "hepto.net/reserved-ports"
)
