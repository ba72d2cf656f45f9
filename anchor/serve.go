package anchor

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/metrics"
	"github.com/hepto-net/hepto/nat"
	"github.com/hepto-net/hepto/supervisor"
)

// Routes registers the anchor's control routes.
func (a *Anchor) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+control.PathJoin, a.handleJoin)
	mux.HandleFunc("GET "+control.PathTURN, a.handleTURN)
	mux.HandleFunc("POST "+control.PathTokens, a.handleTokens)
	mux.HandleFunc("POST "+control.PathHome, a.handleHome)
}

func (a *Anchor) handleJoin(w http.ResponseWriter, r *http.Request) {
	req, err := control.DecodeJoinRequest(r.Body)
	if err != nil {
		control.WriteError(w, control.BadRequest(err))
		return
	}
	resp, err := a.Admit(req, control.RemoteAddr(r))
	if err != nil {
		a.log.Warn("join refused", "from", control.RemoteAddr(r), "err", err)
		control.WriteError(w, err)
		return
	}
	control.WriteJSON(w, http.StatusOK, resp)
	a.Kick()
}

// handleTURN gives a member credentials for every anchor's TURN server;
// the call must be signed by the member's hepto.
func (a *Anchor) handleTURN(w http.ResponseWriter, r *http.Request) {
	member, err := control.RequireCaller(r, "TURN credentials")
	if err != nil {
		control.WriteError(w, err)
		return
	}
	var urls []string
	for _, n := range a.o.Store.Current().Nodes {
		if host, _, err := net.SplitHostPort(n.Endpoint); err == nil && n.IsAnchor() {
			hp := net.JoinHostPort(host, strconv.Itoa(nat.ServerPort))
			urls = append(urls, "stun:"+hp, "turn:"+hp+"?transport=udp")
		}
	}
	creds, err := nat.NewCredentials(nat.TURNSecret(a.o.Signer), member.Name, urls)
	if err != nil {
		control.WriteError(w, err)
		return
	}
	control.WriteJSON(w, http.StatusOK, creds)
}

// Services are the anchor's long-lived parts: pushing new memberships,
// dropping expired join peers, and the STUN/TURN server.
func (a *Anchor) Services(tm *metrics.TURN, resolve func(string) netip.AddrPort) []supervisor.Service {
	return []supervisor.Service{
		supervisor.Func("membership-push", a.pushLoop),
		supervisor.Func("join-tokens", a.expireTokens),
		supervisor.Func("token-sync", a.syncTokens),
		&turnServer{a: a, metrics: tm, resolve: resolve},
	}
}

// pushLoop pushes each membership this anchor admits a node into.
func (a *Anchor) pushLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.kick:
			a.push(ctx)
		}
	}
}

// expireTokens tells the tunnel when a join peer must go: its token
// expired, or was used (UsedGrace).
func (a *Anchor) expireTokens(ctx context.Context) error {
	for {
		wait := time.Hour
		if next, ok := nextExpiry(*a.issued.Load(), time.Now()); ok {
			wait = time.Until(next) + time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-a.peersChanged:
			t.Stop()
		case <-t.C:
			a.o.JoinPeersChanged()
		}
	}
}

// turnServer serves STUN and TURN on the anchor's public address.
type turnServer struct {
	a       *Anchor
	metrics *metrics.TURN
	resolve func(string) netip.AddrPort
	srv     *nat.Server
}

func (t *turnServer) Name() string { return "turn" }

func (t *turnServer) Start(context.Context) error {
	self := t.a.o.Self
	ep := t.resolve(self.Endpoint)
	if !ep.IsValid() {
		return fmt.Errorf("cannot resolve this anchor's endpoint %q", self.Endpoint)
	}
	nets := t.a.cluster().Networks
	o := nat.ServerOptions{
		PublicIP: ep.Addr().AsSlice(), Realm: t.a.cluster().Name, Secret: nat.TURNSecret(t.a.o.Signer), Logger: t.a.log,
		Forbidden: slices.Concat([]netip.Prefix{nets.OverlayV4, nets.OverlayV6, nets.PodsV4, nets.PodsV6}, nets.Services()),
		MinPort:   t.a.o.RelayMin, MaxPort: t.a.o.RelayMax,
	}
	if tm := t.metrics; tm != nil {
		o.OnAllocation = func(delta int) { tm.Allocations.Add(float64(delta)) }
		o.OnRelayed = func(dir string, n int) { tm.Relayed.WithLabelValues(dir).Add(float64(n)) }
	}
	srv, err := nat.NewServer(o)
	if err != nil {
		return err
	}
	t.srv = srv
	return nil
}

func (t *turnServer) Run(ctx context.Context) error {
	<-ctx.Done()
	return t.srv.Close()
}
