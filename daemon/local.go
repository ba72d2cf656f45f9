package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/state"
)

// serveLocal serves the local command socket.
func (d *Daemon) serveLocal(ctx context.Context) error {
	path := d.st.Path(state.SocketFile)
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return fmt.Errorf("another daemon already serves %s", path)
	}
	os.Remove(path) // left over by a crash
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("local socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	defer os.Remove(path)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := d.status()
		if err != nil {
			localapi.WriteError(w, http.StatusInternalServerError, err)
			return
		}
		localapi.WriteJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST /v1/token", func(w http.ResponseWriter, r *http.Request) {
		var req localapi.TokenRequest
		if err := control.Decode(r.Body, &req); err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		resp, err := d.issueToken(req)
		if err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		localapi.WriteJSON(w, http.StatusOK, resp)
	})
	mux.HandleFunc("POST /v1/ping", d.handlePing)
	mux.HandleFunc("GET /v1/netcheck", d.handleNetcheck)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
