package nat

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/pion/turn/v5"
)

// ServerPort is where an anchor serves STUN and TURN (UDP).
const ServerPort = 3478

// TURN's relay ports by default (UDP): the dynamic range.
const (
	RelayMin = 49152
	RelayMax = 65535
)

// ServerOptions configure an anchor's STUN and TURN server.
type ServerOptions struct {
	PublicIP net.IP // the anchor's public address, given out as relay address
	Port     int    // default ServerPort
	Realm    string // the cluster name
	Secret   string // TURNSecret
	// Relay ports, inclusive; default RelayMin-RelayMax.
	MinPort, MaxPort uint16
	// Forbidden are ranges a relay never sends to, beside those that are
	// never on the Internet (RelayAllowed): the cluster's overlay, pod
	// and Service ranges.
	Forbidden []netip.Prefix
	Logger    *slog.Logger
	// Optional counters: allocations opened (+1) and closed (-1), and
	// bytes relayed ("in" from peers, "out" to them).
	OnAllocation func(delta int)
	OnRelayed    func(direction string, n int)
}

// Server is an anchor's STUN and TURN server (pion/turn): STUN binding for
// anyone, relays for members with valid credentials only.
type Server struct {
	srv *turn.Server
}

// NewServer listens on UDP Port of every address.
func NewServer(o ServerOptions) (*Server, error) {
	if o.Port == 0 {
		o.Port = ServerPort
	}
	if o.MinPort == 0 {
		o.MinPort, o.MaxPort = RelayMin, RelayMax
	}
	pc, err := net.ListenPacket("udp", ":"+strconv.Itoa(o.Port))
	if err != nil {
		return nil, fmt.Errorf("STUN/TURN server: %w", err)
	}
	log := pionLogger(o.Logger, "turn")
	var gen turn.RelayAddressGenerator = &turn.RelayAddressGeneratorPortRange{
		RelayAddress: o.PublicIP, Address: "0.0.0.0", MinPort: o.MinPort, MaxPort: o.MaxPort,
	}
	var events turn.EventHandler
	if o.OnRelayed != nil {
		gen = countingGenerator{gen, o.OnRelayed}
	}
	if o.OnAllocation != nil {
		events.OnAllocationCreated = func(_, _ net.Addr, _, _, _ string, _ net.Addr, _ int) { o.OnAllocation(1) }
		events.OnAllocationDeleted = func(_, _ net.Addr, _, _, _ string) { o.OnAllocation(-1) }
	}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:         o.Realm,
		AuthHandler:   turn.LongTermTURNRESTAuthHandler(o.Secret, log.NewLogger("turn")),
		LoggerFactory: log,
		EventHandler:  events,
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: pc, RelayAddressGenerator: gen,
			PermissionHandler: func(_ net.Addr, peer net.IP) bool {
				a, ok := netip.AddrFromSlice(peer)
				return ok && RelayAllowed(a.Unmap(), o.Forbidden)
			},
		}},
	})
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("STUN/TURN server: %w", err)
	}
	return &Server{srv: srv}, nil
}

// notInternet are the ranges RelayAllowed refuses beside loopback,
// private, link-local, multicast and unspecified addresses: shared address
// space (carrier-grade NAT, RFC 6598), "this network", IPv4 reserved.
var notInternet = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// RelayAllowed tells whether a relay may send to peer: a TURN server
// relays for members between homes, over the Internet, and is no way into
// the anchor's own loopback services, its LAN or the cluster's ranges.
func RelayAllowed(peer netip.Addr, forbidden []netip.Prefix) bool {
	if !peer.IsValid() || peer.IsLoopback() || peer.IsPrivate() || peer.IsUnspecified() ||
		peer.IsLinkLocalUnicast() || peer.IsLinkLocalMulticast() || peer.IsMulticast() || peer.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range slices.Concat(notInternet, forbidden) {
		if p.Contains(peer) {
			return false
		}
	}
	return true
}

// Close stops the server and frees its relays.
func (s *Server) Close() error { return s.srv.Close() }

// countingGenerator counts what goes through the relays it makes.
type countingGenerator struct {
	turn.RelayAddressGenerator
	count func(direction string, n int)
}

func (g countingGenerator) AllocatePacketConn(cfg turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	pc, addr, err := g.RelayAddressGenerator.AllocatePacketConn(cfg)
	if err != nil {
		return nil, nil, err
	}
	return countingConn{pc, g.count}, addr, nil
}

type countingConn struct {
	net.PacketConn
	count func(direction string, n int)
}

func (c countingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(b)
	if n > 0 {
		c.count("in", n)
	}
	return n, a, err
}

func (c countingConn) WriteTo(b []byte, a net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(b, a)
	if n > 0 {
		c.count("out", n)
	}
	return n, err
}
