package nat

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/pion/turn/v5"
)

// ServerPort is where an anchor serves STUN and TURN (UDP).
const ServerPort = 3478

// ServerOptions configure an anchor's STUN and TURN server.
type ServerOptions struct {
	PublicIP net.IP // the anchor's public address, given out as relay address
	Port     int    // default ServerPort
	Realm    string // the cluster name
	Secret   string // TURNSecret
	// Relay ports, inclusive; default 49152-65535.
	MinPort, MaxPort uint16
	Logger           *slog.Logger
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
		o.MinPort, o.MaxPort = 49152, 65535
	}
	pc, err := net.ListenPacket("udp", ":"+strconv.Itoa(o.Port))
	if err != nil {
		return nil, fmt.Errorf("STUN/TURN server: %w", err)
	}
	log := pionLogger(o.Logger, "turn")
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:         o.Realm,
		AuthHandler:   turn.LongTermTURNRESTAuthHandler(o.Secret, log.NewLogger("turn")),
		LoggerFactory: log,
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn: pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorPortRange{
				RelayAddress: o.PublicIP, Address: "0.0.0.0", MinPort: o.MinPort, MaxPort: o.MaxPort,
			},
		}},
	})
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("STUN/TURN server: %w", err)
	}
	return &Server{srv: srv}, nil
}

// Close stops the server and frees its relays.
func (s *Server) Close() error { return s.srv.Close() }
