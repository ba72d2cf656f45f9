// Package localapi is the daemon's local command interface: HTTP over the
// unix socket DIR/hepto.sock (mode 0600, so only the daemon's owner may
// use it), and the types the commands exchange with it.
package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Status is the reply of GET /v1/status; its JSON is a contract.
type Status struct {
	Name       string       `json:"name"`
	Cluster    string       `json:"cluster"`
	Zone       string       `json:"zone,omitempty"` // this node's home (topology.kubernetes.io/zone)
	OverlayIPs []string     `json:"overlay_ips"`
	PodCIDRs   []string     `json:"pod_cidrs,omitempty"`
	Anchor     bool         `json:"anchor"`
	ListenPort uint16       `json:"listen_port"`
	Peers      []PeerStatus `json:"peers"`
	// Services are the node's parts, as the supervisor sees them.
	Services []ServiceStatus `json:"services,omitempty"`
	// Kubernetes is the node's role in Kubernetes and its components.
	Kubernetes KubernetesStatus `json:"kubernetes"`
}

// KubernetesStatus is Status's "kubernetes": the role ("control-plane",
// "worker" or "none"), the node's Ready condition, and each component's
// state ("starting", "running", "stopped" or "failed: REASON").
type KubernetesStatus struct {
	Role       string            `json:"role"`
	Ready      bool              `json:"ready"`
	Components map[string]string `json:"components"`
	// ControlPlane is etcd's membership and leader, on a control-plane
	// node whose etcd runs.
	ControlPlane *ControlPlaneStatus `json:"control_plane,omitempty"`
	// APIServer is the node-local endpoint's current target (host:port of
	// an apiserver), "" while none answers.
	APIServer *APIServerStatus `json:"apiserver,omitempty"`
	// Published are the Service ports this node serves on its public
	// addresses (an anchor's; a home's global IPv6).
	Published []Published `json:"published,omitempty"`
}

// Published is one Service port a node serves on one of its public
// addresses, and its traffic since hepto started.
type Published struct {
	Service  string `json:"service"`  // namespace/name
	Address  string `json:"address"`  // public IP:port
	Protocol string `json:"protocol"` // tcp or udp
	// Mode is who carries it: "vip" (kube-proxy; the visitor's address
	// reaches only a pod on this node) or "proxy" (hepto's proxy).
	Mode string `json:"mode"`
	// ProxyProtocol: hepto's proxy sends the PROXY protocol v2 header.
	ProxyProtocol bool   `json:"proxy_protocol,omitempty"`
	Connections   uint64 `json:"connections"` // TCP connections, UDP visitors
	Open          int64  `json:"open"`        // open now (hepto's proxy only)
	BytesIn       uint64 `json:"bytes_in"`    // from visitors
	BytesOut      uint64 `json:"bytes_out"`   // to visitors
}

// ControlPlaneStatus is etcd's membership seen from a control-plane node.
type ControlPlaneStatus struct {
	Members []EtcdMember `json:"members"`
	Leader  string       `json:"leader"` // "" while etcd has no leader
}

// EtcdMember is one etcd member; a learner is catching up and does not
// vote yet.
type EtcdMember struct {
	Name    string `json:"name"`
	PeerURL string `json:"peer_url"`
	Learner bool   `json:"learner,omitempty"`
}

// APIServerStatus is the node-local apiserver endpoint.
type APIServerStatus struct {
	Endpoint string `json:"endpoint"` // https://127.0.0.1:PORT, what the node's clients use
	Target   string `json:"target"`   // the apiserver it forwards to now; "" while none answers
}

// ServiceStatus is one of the node's services: "starting", "running",
// "done" (nothing to do), "stopped", or "failed: REASON" while it waits to
// be restarted.
type ServiceStatus struct {
	Name     string    `json:"name"`
	State    string    `json:"state"`
	Restarts int       `json:"restarts"`
	Since    time.Time `json:"since"`
}

// PeerStatus is one peer in Status.
type PeerStatus struct {
	Name       string   `json:"name"`
	Zone       string   `json:"zone,omitempty"` // its home (topology.kubernetes.io/zone)
	OverlayIPs []string `json:"overlay_ips"`
	Connected  bool     `json:"connected"`
	Path       string   `json:"path"`          // "direct" or "relay"
	Via        string   `json:"via,omitempty"` // relay: the node that relays
	Endpoint   string   `json:"endpoint"`
	// RTTSeconds is null until a round trip has been measured.
	RTTSeconds    *float64   `json:"rtt_seconds"`
	LastHandshake *time.Time `json:"last_handshake"`
	RxBytes       uint64     `json:"rx_bytes"`
	TxBytes       uint64     `json:"tx_bytes"`
}

// Kubeconfig is the reply of GET /v1/kubeconfig: an admin kubeconfig.
type Kubeconfig struct {
	Kubeconfig string `json:"kubeconfig"`
}

// What a KubeconfigRequest leaves empty.
const (
	DefaultUser          = "admin"              // the kubeconfig's person
	DefaultKubeconfigTTL = 365 * 24 * time.Hour // how long it lasts
)

// KubeconfigRequest is the body of POST /v1/kubeconfig: a person's
// kubeconfig, cluster admin or admin of Namespaces, lasting TTL (0: a
// year).
type KubeconfigRequest struct {
	User       string        `json:"user"`
	Namespaces []string      `json:"namespaces,omitempty"`
	TTL        time.Duration `json:"ttl,omitempty"`
}

// KubeconfigEntry is a kubeconfig handed out and not revoked (GET
// /v1/kubeconfigs).
type KubeconfigEntry struct {
	User         string   `json:"user"`
	ID           string   `json:"id"`
	ClusterAdmin bool     `json:"cluster_admin,omitempty"`
	Namespaces   []string `json:"namespaces,omitempty"`
	Expires      string   `json:"expires"`
}

// RevokeRequest is the body of POST /v1/kubeconfig/revoke.
type RevokeRequest struct {
	User string `json:"user"`
}

// Revoked is its answer: how many bindings went.
type Revoked struct {
	Bindings int `json:"bindings"`
}

// SecretsRotated is the answer of POST /v1/secrets/rotate: the key that
// now encrypts (its name in etcd's values), the Secrets written again
// under it, and the control-plane nodes that use it.
type SecretsRotated struct {
	Key           string   `json:"key"`
	Secrets       int      `json:"secrets"`
	ControlPlanes []string `json:"control_planes"`
}

// BackupRequest is the body of POST /v1/backup: where the daemon writes
// the backup (an absolute path).
type BackupRequest struct {
	Path string `json:"path"`
}

// BackupResponse is the reply of POST /v1/backup.
type BackupResponse struct {
	Path    string `json:"path"`
	Size    int    `json:"size"`
	KeyFile string `json:"key_file"` // the key that opens it
}

// RemoveRequest is the body of POST /v1/remove.
type RemoveRequest struct {
	Name string `json:"name"`
}

// RemoveResponse is the reply of POST /v1/remove.
type RemoveResponse struct {
	Name    string    `json:"name"`
	Removed time.Time `json:"removed"`
}

// TokenRequest is the body of POST /v1/token.
type TokenRequest struct {
	Name string        `json:"name"`
	TTL  time.Duration `json:"ttl"`
	// Anchor: the node joins as a further anchor, reachable at Endpoint.
	Anchor       bool   `json:"anchor,omitempty"`
	Endpoint     string `json:"endpoint,omitempty"`
	ControlPlane bool   `json:"control_plane,omitempty"`
	// Fabric: the node runs the fabric only, never Kubernetes.
	Fabric bool `json:"fabric,omitempty"`
}

// TokenResponse is the reply of POST /v1/token.
type TokenResponse struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// Error is the body of every failed request.
type Error struct {
	Error string `json:"error"`
}

// Client talks to a running daemon.
type Client struct {
	http *http.Client
}

// NewClient returns a client for the daemon listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Client{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// ErrNotRunning means nothing answers on the socket.
var ErrNotRunning = errors.New("the hepto daemon is not running (no answer on its socket)")

// Do sends a request; in may be nil; out receives the JSON reply.
// WithTimeout is the client with another bound on each call (an image
// import takes longer than a status).
func (c *Client) WithTimeout(d time.Duration) *Client {
	h := *c.http
	h.Timeout = d
	return &Client{http: &h}
}

func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://hepto"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return ErrNotRunning
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("daemon answered %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// WriteJSON writes v, or an Error for a non-nil err, as a handler's reply.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// WriteError writes err as an Error.
func WriteError(w http.ResponseWriter, code int, err error) {
	WriteJSON(w, code, Error{Error: err.Error()})
}

// PingRequest is the body of POST /v1/ping: one round trip to a node.
type PingRequest struct {
	Node string `json:"node"`
}

// Pong is one round trip through the overlay, and the path it took.
type Pong struct {
	Node       string  `json:"node"`
	IP         string  `json:"ip"`
	RTTSeconds float64 `json:"rtt_seconds"`
	Path       string  `json:"path"`
	Via        string  `json:"via,omitempty"`
	Endpoint   string  `json:"endpoint"`
}

// Netcheck is the reply of GET /v1/netcheck.
type Netcheck struct {
	// NAT: "endpoint-independent", "endpoint-dependent" (symmetric: no
	// direct path through it), "none" (public address) or "unknown".
	NAT          string        `json:"nat"`
	PublicIPv4   string        `json:"public_ipv4,omitempty"`
	PublicIPv6   string        `json:"public_ipv6,omitempty"`
	Observations []Observation `json:"observations"`
	Anchors      []AnchorCheck `json:"anchors"`
}

// Observation is one STUN answer: the address a server saw us at.
type Observation struct {
	Server     string  `json:"server"`
	Mapped     string  `json:"mapped,omitempty"`
	RTTSeconds float64 `json:"rtt_seconds,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// AnchorCheck is an anchor's reachability from this node.
type AnchorCheck struct {
	Name       string  `json:"name"`
	Endpoint   string  `json:"endpoint"`
	Reachable  bool    `json:"reachable"`
	RTTSeconds float64 `json:"rtt_seconds,omitempty"`
}

// ImageImport is the body of POST /v1/images/import: an image archive on
// the node's file system, imported into its containerd.
type ImageImport struct {
	Path string `json:"path"`
}
