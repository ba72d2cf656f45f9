package tunnel

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	socks5 "github.com/armon/go-socks5"
)

// ServeSOCKS5 serves a SOCKS5 proxy on addr (a host address, e.g. loopback)
// whose connections go into the overlay through DialContext. It returns nil
// when ctx is done.
func (t *Tunnel) ServeSOCKS5(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("tunnel: socks5 listen: %w", err)
	}
	return t.ServeSOCKS5Listener(ctx, ln)
}

// ServeSOCKS5Listener is ServeSOCKS5 on a listener the caller opened; it
// closes ln.
func (t *Tunnel) ServeSOCKS5Listener(ctx context.Context, ln net.Listener) error {
	srv, err := socks5.New(&socks5.Config{
		Dial:   t.DialContext,
		Logger: slog.NewLogLogger(t.log.With("component", "socks5").Handler(), slog.LevelDebug),
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("tunnel: socks5: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	t.log.Debug("socks5 proxy listening", "addr", ln.Addr())
	err = srv.Serve(ln)
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("tunnel: socks5: %w", err)
}
