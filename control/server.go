package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"golang.org/x/net/netutil"
)

// RemoteAddr is the overlay address a request came from: inside WireGuard,
// cryptokey routing vouches for it.
func RemoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// MaxConns is how many connections a server serves at once on each
// address; more wait in the kernel's backlog. A member that opens
// thousands cannot starve the others nor the node's memory.
const MaxConns = 128

// Server serves the control protocol on a node's overlay addresses. Other
// parts register their routes on Mux before it starts.
type Server struct {
	Mux *http.ServeMux
	// Gate, when set, sees each request first: an error is the answer.
	Gate func(*http.Request) error
	// Identity, when set, tells who signed a call (Caller).
	Identity *Identity
	addrs    []netip.Addr
	listen   func(network string, addr netip.AddrPort) (net.Listener, error)
	lns      []net.Listener
}

// NewServer returns a server for the overlay addresses addrs; listen opens
// a listener in the overlay.
func NewServer(addrs []netip.Addr, listen func(network string, addr netip.AddrPort) (net.Listener, error)) *Server {
	return &Server{Mux: http.NewServeMux(), addrs: addrs, listen: listen}
}

func (s *Server) Name() string { return "control" }

// Start listens on TCP Port of each overlay address.
func (s *Server) Start(context.Context) error {
	s.lns = nil
	for _, ip := range s.addrs {
		ln, err := s.listen("tcp", netip.AddrPortFrom(ip, Port))
		if err != nil {
			for _, l := range s.lns {
				l.Close()
			}
			return fmt.Errorf("listen on %v: %w", ip, err)
		}
		s.lns = append(s.lns, netutil.LimitListener(ln, MaxConns))
	}
	return nil
}

// serve passes r through the gate (a removed node is told so, whatever
// its call), authenticates it, then passes it to its route.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.Gate != nil {
		if err := s.Gate(r); err != nil {
			WriteError(w, err)
			return
		}
	}
	if s.Identity != nil {
		r = s.Identity.authenticate(r)
	}
	s.Mux.ServeHTTP(w, r)
}

// Run serves until ctx ends or a listener fails.
func (s *Server) Run(ctx context.Context) error {
	srv := &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	errc := make(chan error, len(s.lns))
	for _, ln := range s.lns {
		go func() { errc <- srv.Serve(ln) }()
	}
	err := <-errc
	srv.Close()
	if errors.Is(err, http.ErrServerClosed) && ctx.Err() != nil {
		return nil
	}
	return err
}
