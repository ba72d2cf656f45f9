package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hepto-net/hepto/anchor"
	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/mesh"
	"github.com/hepto-net/hepto/state"
	"github.com/hepto-net/hepto/supervisor"
	"github.com/hepto-net/hepto/tunnel"
)

// localAPI serves the local command socket, STATE/hepto.sock.
type localAPI struct {
	st     state.Dir
	node   *node
	tun    *tunnel.Tunnel
	mesh   *mesh.Mesh
	anchor *anchor.Anchor // nil but on anchors
	kube   *kubeNode
	sup    *supervisor.Supervisor
	ln     net.Listener
}

func (l *localAPI) Name() string { return "local-api" }

func (l *localAPI) Start(context.Context) error {
	path := l.st.Path(state.SocketFile)
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return fmt.Errorf("another daemon already serves %s", path)
	}
	os.Remove(path) // left over by a crash
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	l.ln = ln
	return nil
}

func (l *localAPI) Run(ctx context.Context) error {
	defer os.Remove(l.st.Path(state.SocketFile))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", l.handleStatus)
	mux.HandleFunc("POST /v1/token", l.handleToken)
	mux.HandleFunc("POST /v1/ping", l.handlePing)
	mux.HandleFunc("POST /v1/remove", l.handleRemove)
	mux.HandleFunc("POST /v1/backup", l.handleBackup)
	mux.HandleFunc("GET /v1/kubeconfig", l.handleKubeconfig)
	mux.HandleFunc("POST /v1/kubeconfig", l.handleKubeconfig)
	mux.HandleFunc("GET /v1/kubeconfigs", l.handleKubeconfigs)
	mux.HandleFunc("POST /v1/kubeconfig/revoke", l.handleRevoke)
	mux.HandleFunc("POST /v1/secrets/rotate", l.handleSecretsRotate)
	mux.HandleFunc("POST /v1/images/import", l.handleImageImport)
	mux.HandleFunc("GET /v1/netcheck", func(w http.ResponseWriter, r *http.Request) {
		localapi.WriteJSON(w, http.StatusOK, l.mesh.Netcheck(r.Context()))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	if err := srv.Serve(l.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (l *localAPI) handleStatus(w http.ResponseWriter, r *http.Request) {
	peers, err := l.mesh.Peers(r.Context())
	if err != nil {
		localapi.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	n := l.node
	st := localapi.Status{
		Name: n.self.Name, Cluster: n.cluster.Name, Zone: zoneOf(n), Anchor: l.anchor != nil,
		OverlayIPs: strs(n.self.OverlayIPs), PodCIDRs: strs(n.self.PodCIDRs),
		ListenPort: l.tun.ListenPort(), Peers: peers, Kubernetes: l.kube.Status(r.Context()),
	}
	for _, s := range l.sup.States() {
		st.Services = append(st.Services, localapi.ServiceStatus{Name: s.Name, State: s.State, Restarts: s.Restarts, Since: s.Since.UTC()})
	}
	localapi.WriteJSON(w, http.StatusOK, st)
}

func (l *localAPI) handleToken(w http.ResponseWriter, r *http.Request) {
	var req localapi.TokenRequest
	if err := control.Decode(r.Body, &req); err != nil {
		localapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if l.anchor == nil {
		localapi.WriteError(w, http.StatusBadRequest, errors.New("this node is not an anchor: tokens are made on an anchor"))
		return
	}
	tok, exp, err := l.anchor.IssueToken(anchor.TokenOptions{Name: req.Name, TTL: req.TTL, Anchor: req.Anchor, Endpoint: req.Endpoint, ControlPlane: req.ControlPlane, Fabric: req.Fabric})
	if err != nil {
		localapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	localapi.WriteJSON(w, http.StatusOK, localapi.TokenResponse{Token: tok, Expires: exp})
}

// handleBackup seals a backup of this control-plane anchor into a file.
func (l *localAPI) handleBackup(w http.ResponseWriter, r *http.Request) {
	var req localapi.BackupRequest
	if err := control.Decode(r.Body, &req); err != nil {
		localapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if !filepath.IsAbs(req.Path) {
		localapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("%q: the backup's path must be absolute", req.Path))
		return
	}
	if l.anchor == nil {
		localapi.WriteError(w, http.StatusBadRequest, errors.New("backups are taken on a control-plane anchor"))
		return
	}
	size, err := takeBackup(r.Context(), l.st, l.kube, req.Path)
	switch {
	case errors.Is(err, errNotControlPlane):
		localapi.WriteError(w, http.StatusBadRequest, err)
	case err != nil:
		localapi.WriteError(w, http.StatusInternalServerError, err)
	default:
		localapi.WriteJSON(w, http.StatusOK, localapi.BackupResponse{Path: req.Path, Size: size, KeyFile: l.st.Path(state.BackupKeyFile)})
	}
}

// handleRemove takes a node out of the cluster, on an anchor.
func (l *localAPI) handleRemove(w http.ResponseWriter, r *http.Request) {
	var req localapi.RemoveRequest
	if err := control.Decode(r.Body, &req); err != nil {
		localapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if l.anchor == nil {
		localapi.WriteError(w, http.StatusBadRequest, errors.New("this node is not an anchor: nodes are removed on an anchor"))
		return
	}
	t, err := l.anchor.Remove(r.Context(), req.Name)
	switch {
	case errors.Is(err, anchor.ErrRemoveRefused):
		localapi.WriteError(w, http.StatusConflict, err)
	case errors.Is(err, anchor.ErrNoNode):
		localapi.WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, anchor.ErrSelf):
		localapi.WriteError(w, http.StatusBadRequest, err)
	case err != nil:
		localapi.WriteError(w, http.StatusInternalServerError, err)
	default:
		localapi.WriteJSON(w, http.StatusOK, localapi.RemoveResponse{Name: t.Name, Removed: t.Removed})
	}
}

// handlePing makes one round trip to a node and says how it went.
func (l *localAPI) handlePing(w http.ResponseWriter, r *http.Request) {
	var req localapi.PingRequest
	if err := control.Decode(r.Body, &req); err != nil {
		localapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	pong, err := l.mesh.Ping(r.Context(), req.Node)
	switch {
	case errors.Is(err, mesh.ErrNoPeer):
		localapi.WriteError(w, http.StatusNotFound, err)
	case err != nil:
		localapi.WriteError(w, http.StatusGatewayTimeout, err)
	default:
		localapi.WriteJSON(w, http.StatusOK, pong)
	}
}

func strs[T fmt.Stringer](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	return out
}

// handleKubeconfig answers with an admin kubeconfig, on control-plane
// nodes.
func (l *localAPI) handleKubeconfig(w http.ResponseWriter, r *http.Request) {
	var req localapi.KubeconfigRequest
	if r.Method == http.MethodPost {
		if err := control.Decode(r.Body, &req); err != nil {
			localapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
	}
	b, err := l.kube.UserKubeconfig(r.Context(), req)
	if err != nil {
		localapi.WriteError(w, kubeStatus(err), err)
		return
	}
	localapi.WriteJSON(w, http.StatusOK, localapi.Kubeconfig{Kubeconfig: string(b)})
}

func (l *localAPI) handleKubeconfigs(w http.ResponseWriter, r *http.Request) {
	list, err := l.kube.Kubeconfigs(r.Context())
	if err != nil {
		localapi.WriteError(w, kubeStatus(err), err)
		return
	}
	localapi.WriteJSON(w, http.StatusOK, list)
}

func (l *localAPI) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var req localapi.RevokeRequest
	if err := control.Decode(r.Body, &req); err != nil {
		localapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	n, err := l.kube.RevokeKubeconfigs(r.Context(), req.User)
	if err != nil {
		localapi.WriteError(w, kubeStatus(err), err)
		return
	}
	localapi.WriteJSON(w, http.StatusOK, localapi.Revoked{Bindings: n})
}

// handleSecretsRotate gives Secrets a new key on every control-plane node
// (a minute or so: each step waits for every apiserver).
func (l *localAPI) handleSecretsRotate(w http.ResponseWriter, r *http.Request) {
	out, err := l.kube.RotateSecretsKey(r.Context())
	if err != nil {
		localapi.WriteError(w, kubeStatus(err), err)
		return
	}
	localapi.WriteJSON(w, http.StatusOK, out)
}

// kubeStatus is the HTTP status of a Kubernetes error.
func kubeStatus(err error) int {
	switch {
	case errors.Is(err, errNotControlPlane), errors.Is(err, errUnknownUser):
		return http.StatusNotFound
	case errors.Is(err, errBadUser):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// handleImageImport imports an image archive into the node's containerd.
func (l *localAPI) handleImageImport(w http.ResponseWriter, r *http.Request) {
	var req localapi.ImageImport
	if err := control.Decode(r.Body, &req); err != nil {
		localapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if !filepath.IsAbs(req.Path) {
		localapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("%q: the archive's path must be absolute", req.Path))
		return
	}
	switch err := l.kube.ImportImage(r.Context(), req.Path); {
	case errors.Is(err, errNoRuntime):
		localapi.WriteError(w, http.StatusConflict, err)
	case err != nil:
		localapi.WriteError(w, http.StatusBadRequest, err)
	default:
		localapi.WriteJSON(w, http.StatusOK, req)
	}
}
