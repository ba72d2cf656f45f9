// Package control is the protocol nodes speak to each other inside the
// overlay: joining through an anchor and spreading the signed membership.
// It is HTTP on TCP port Port of overlay addresses only, so every message
// travels inside WireGuard; WireGuard's cryptokey routing authenticates the
// sender's overlay address, the membership is signed besides, and a call
// for something per node is signed by the calling node's hepto (auth.go).
package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/membership"
)

// Port is the TCP port of the control protocol on overlay addresses.
const Port = 51821

// Paths of the protocol.
const (
	PathJoin       = "/v1/join"       // POST JoinRequest → JoinResponse (anchors)
	PathMembership = "/v1/membership" // GET ?have=DIGEST → membership.Set, or 204 when unchanged; POST membership.Set → 204, or 200 and the union when the receiver held more (every node)
)

// MaxMessage bounds every message read, so a peer cannot make a node
// allocate without limit.
const MaxMessage = 1 << 20

// JoinRequest is sent by a joining node, through the tunnel opened with
// the token's one-time key.
type JoinRequest struct {
	Token     string     `json:"token"`
	PublicKey key.Public `json:"public_key"` // the node's own WireGuard key
	HomeReport
}

// JoinResponse admits the node.
type JoinResponse struct {
	Cluster    membership.Signed `json:"cluster"`
	Node       membership.Signed `json:"node"`
	Membership membership.Set    `json:"membership"`
	// SigningKey is the cluster's key, for a node admitted as an anchor.
	SigningKey *membership.SigningKey `json:"signing_key,omitempty"`
}

// Decode reads one JSON message of at most MaxMessage bytes, trailing
// white space included, and rejects trailing data.
func Decode(r io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(r, MaxMessage+1))
	if err != nil {
		return fmt.Errorf("malformed message: %w", err)
	}
	if len(b) > MaxMessage {
		return fmt.Errorf("malformed message: larger than %d bytes", MaxMessage)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed message: %w", err)
	}
	if dec.More() {
		return errors.New("malformed message: trailing data")
	}
	return nil
}

// DecodeJoinRequest reads and checks a JoinRequest.
func DecodeJoinRequest(r io.Reader) (JoinRequest, error) {
	var req JoinRequest
	if err := Decode(r, &req); err != nil {
		return JoinRequest{}, err
	}
	if req.Token == "" || req.PublicKey.IsZero() {
		return JoinRequest{}, errors.New("malformed message: join request needs a token and a public key")
	}
	if err := req.HomeReport.validate(); err != nil {
		return JoinRequest{}, err
	}
	return req, nil
}

// PathICE carries ICE signalling between two nodes: POST ICEMessage.
const PathICE = "/v1/ice"

// PathRelayICE asks an anchor to pass an ICE message on: POST RelayedICE.
// Signalling between two homes goes this way first, as it works whatever
// state their own path is in.
const PathRelayICE = "/v1/relay/ice"

// RelayedICE is an ICE message for another node.
type RelayedICE struct {
	To      string     `json:"to"`
	Message ICEMessage `json:"message"`
}

// PathTURN gives a member STUN and TURN servers with fresh credentials:
// GET → TURNCredentials (anchors).
const PathTURN = "/v1/turn"

// PathHome is how a member tells an anchor which home it is in: POST
// HomeReport → its record (membership.Signed), with the zone decided.
const PathHome = "/v1/home"

// HomeReport is what a node knows of its home: the fingerprint of its
// LAN (home.Find; "" when it has none) and the zone its owner chose
// (hepto run --zone; "" to have it found).
type HomeReport struct {
	Home string `json:"home,omitempty"`
	Zone string `json:"zone,omitempty"`
}

// DecodeHomeReport reads and checks a HomeReport.
func DecodeHomeReport(r io.Reader) (HomeReport, error) {
	var rep HomeReport
	if err := Decode(r, &rep); err != nil {
		return HomeReport{}, err
	}
	return rep, rep.validate()
}

func (r HomeReport) validate() error {
	if len(r.Home) > 64 || strings.Trim(r.Home, "0123456789abcdef") != "" {
		return errors.New("malformed message: a home is at most 64 hexadecimal digits")
	}
	if r.Zone != "" {
		if err := membership.CheckName("zone", r.Zone); err != nil {
			return fmt.Errorf("malformed message: %w", err)
		}
	}
	return nil
}

// PathTokens is how anchors share their token books (anchors only): POST
// the sender's book → the receiver's, merged.
const PathTokens = "/v1/tokens"

// PathBackups takes a copy of a control-plane node's sealed backup (POST,
// the file's bytes), kept in STATE/backups, the latest from each.
const PathBackups = "/v1/backups"

// TURNCredentials let a member use the anchors' TURN servers until they
// expire. They follow the TURN REST scheme (user "EXPIRY:NAME", password
// the base64 HMAC-SHA1 of it under a shared secret), which coturn also
// speaks (use-auth-secret).
type TURNCredentials struct {
	URLs     []string  `json:"urls"` // stun: and turn: URIs
	Username string    `json:"username"`
	Password string    `json:"password"`
	Expires  time.Time `json:"expires"`
}

// ICEMessage is one step of ICE signalling between two nodes. Sessions
// belong to the controlling node (the greater WireGuard key): it offers a
// session, the other answers in the same session; the other node asks for
// a new session with Restart.
type ICEMessage struct {
	From       string   `json:"from"`
	Session    uint64   `json:"session,omitempty"`
	Probe      bool     `json:"probe,omitempty"` // a direct attempt beside a relayed path
	Ufrag      string   `json:"ufrag,omitempty"`
	Pwd        string   `json:"pwd,omitempty"`
	Candidates []string `json:"candidates,omitempty"`
	Restart    bool     `json:"restart,omitempty"`
	// MAC authenticates the message to its recipient when a node that is
	// not an anchor passes it on: HMAC-SHA256 of the message (MAC unset)
	// under a key of the pair's static Diffie-Hellman secret.
	MAC []byte `json:"mac,omitempty"`
}

// maxCandidates bounds one message; a node has a handful of addresses.
const maxCandidates = 64

// DecodeICEMessage reads and checks an ICEMessage.
func DecodeICEMessage(r io.Reader) (ICEMessage, error) {
	var m ICEMessage
	if err := Decode(r, &m); err != nil {
		return ICEMessage{}, err
	}
	switch {
	case m.From == "":
		return ICEMessage{}, errors.New("malformed message: ICE message without sender")
	case !m.Restart && m.Session == 0:
		return ICEMessage{}, errors.New("malformed message: ICE message without session")
	case (m.Ufrag == "") != (m.Pwd == ""):
		return ICEMessage{}, errors.New("malformed message: ICE credentials incomplete")
	case len(m.Candidates) > maxCandidates:
		return ICEMessage{}, errors.New("malformed message: too many ICE candidates")
	}
	return m, nil
}

// PathNodeCerts asks a control-plane node for the asking node's
// Kubernetes client and serving certificates: POST NodeCertsRequest →
// NodeCerts. The node is known by its hepto's signature (Caller); its
// keys never leave it.
const PathNodeCerts = "/v1/kubernetes/node-certs"

// NodeCertsRequest carries the public keys (PKIX, DER) of a node's keys:
// the kubelet's client and serving keys, kube-proxy's, and its DNS
// server's (which reads Services, EndpointSlices and Pods).
type NodeCertsRequest struct {
	ClientKey  []byte `json:"client_key"`
	ServingKey []byte `json:"serving_key"`
	ProxyKey   []byte `json:"proxy_key"`
	DNSKey     []byte `json:"dns_key"`
}

// NodeCerts are a node's certificates (PEM), the cluster CA that signed
// them, and the apiservers to talk to.
type NodeCerts struct {
	CA         []byte   `json:"ca"`
	Client     []byte   `json:"client"`
	Serving    []byte   `json:"serving"`
	Proxy      []byte   `json:"proxy"`
	DNS        []byte   `json:"dns"`
	APIServers []string `json:"api_servers"` // https://ADDR:PORT
}

// PathControlPlaneJoin admits a node with the control-plane role into the
// control plane (served by control-plane nodes, to members with that role
// only): POST ControlPlaneJoinRequest → ControlPlaneJoin. The asking
// node's etcd member is added as a learner, promoted once it caught up.
const PathControlPlaneJoin = "/v1/kubernetes/control-plane/join"

// ControlPlaneJoinRequest gives the joining node's etcd peer URL.
type ControlPlaneJoinRequest struct {
	PeerURL string `json:"peer_url"`
}

// ControlPlaneJoin is what a joining control-plane node needs: the
// cluster's CAs and service-account key (file name → PEM) and etcd's
// membership to start with (NAME=PEER_URL,…).
type ControlPlaneJoin struct {
	PKI            map[string][]byte `json:"pki"`
	InitialCluster string            `json:"initial_cluster"`
}

// PathEtcdRemove removes a node's etcd member (served by control-plane
// nodes, to anchors and control-plane nodes): POST EtcdRemoveRequest → 204;
// refused, saying why, when the removal would lose etcd's quorum.
const PathEtcdRemove = "/v1/kubernetes/control-plane/remove"

// EtcdRemoveRequest names the node whose member goes.
type EtcdRemoveRequest struct {
	Name string `json:"name"`
}

// PathSecretsKeys sets a control-plane node's Secrets keys (served by
// control-plane nodes, to control-plane nodes: a rotation): POST
// SecretsKeys → 204 once its apiserver uses them.
const PathSecretsKeys = "/v1/kubernetes/control-plane/secrets-keys"

// SecretsKeys are the keys of Secrets in etcd, the one that encrypts
// first (32 bytes each).
type SecretsKeys struct {
	Keys [][]byte `json:"keys"`
}

// PathVolumes makes and deletes a node's local persistent volumes, for
// the control plane's provisioner (served by Kubernetes nodes, to
// control-plane nodes): POST VolumeRequest → VolumeResponse.
const PathVolumes = "/v1/kubernetes/volumes"

// Operations of a VolumeRequest.
const (
	VolumeCreate = "create"
	VolumeDelete = "delete"
)

// VolumeRequest asks a node to create or delete one local volume.
type VolumeRequest struct {
	Op   string `json:"op"`
	Name string `json:"name"`
}

// VolumeResponse is the volume's path on the node (create), and the
// node's space for volumes after the operation, in bytes.
type VolumeResponse struct {
	Path      string `json:"path,omitempty"`
	Available int64  `json:"available"`
	Capacity  int64  `json:"capacity"`
}

// PathBlobs serves, to members, the image content a Kubernetes node holds,
// by digest: GET or HEAD PathBlobs + "sha256:HEX" → the bytes (404 when
// the node has none). Nodes share images so, before the registry.
const PathBlobs = "/v1/kubernetes/blobs/"
