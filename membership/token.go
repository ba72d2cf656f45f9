package membership

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hepto-net/hepto/key"
)

// TokenPrefix starts every join token, so that a wrong paste is told apart
// from a damaged token.
const TokenPrefix = "hepto1."

// Token admits one node, once, before it expires. It carries what the new
// node needs to find and trust an anchor, and a one-time WireGuard key that
// the anchor accepts for the join exchange only: the exchange travels inside
// WireGuard, like all signalling.
type Token struct {
	ID         string            `json:"id"`
	Cluster    string            `json:"cluster"`
	ClusterKey ed25519.PublicKey `json:"cluster_key"`
	Name       string            `json:"name"` // the node this token admits
	Expires    time.Time         `json:"expires"`
	JoinKey    key.Private       `json:"join_key"`
	JoinIP     netip.Addr        `json:"join_ip"`
	Anchors    []Anchor          `json:"anchors"`
	// Roles the node gets; an anchor also has its public Endpoint.
	Roles    []string `json:"roles,omitempty"`
	Endpoint string   `json:"endpoint,omitempty"`
}

// Anchor is how a joining node reaches an anchor.
type Anchor struct {
	Name       string       `json:"name"`
	Endpoint   string       `json:"endpoint"` // HOST:PORT, UDP
	PublicKey  key.Public   `json:"public_key"`
	OverlayIPs []netip.Addr `json:"overlay_ips"`
}

// Errors of ParseToken and Token.Check, for callers that need to tell them apart.
var (
	ErrTokenMalformed = errors.New("token is damaged or truncated")
	ErrTokenExpired   = errors.New("token expired")
)

// NewTokenID returns a random token ID and the 32 bits that pick its join address.
func NewTokenID() (string, uint32, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", 0, fmt.Errorf("token id: %w", err)
	}
	return hex.EncodeToString(b[:8]), uint32(b[8])<<24 | uint32(b[9])<<16 | uint32(b[10])<<8 | uint32(b[11]), nil
}

// Encode signs the token and gives its one-line text form.
func (t Token) Encode(priv ed25519.PrivateKey) (string, error) {
	s, err := Sign(priv, KindToken, t)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	return TokenPrefix + enc.EncodeToString(s.Payload) + "." + enc.EncodeToString(s.Sig), nil
}

// ParseToken decodes a token and checks that it is signed by the cluster key
// it names. Whether that is the right cluster, and whether the token is
// still good, are for Check and for the anchor.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, TokenPrefix) {
		return Token{}, fmt.Errorf("not a hepto join token (it should start with %q)", TokenPrefix)
	}
	payloadB64, sigB64, ok := strings.Cut(strings.TrimPrefix(s, TokenPrefix), ".")
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(payloadB64)
	sig, err2 := enc.DecodeString(sigB64)
	if !ok || err1 != nil || err2 != nil || len(sig) != ed25519.SignatureSize {
		return Token{}, ErrTokenMalformed
	}
	var t Token
	if err := json.Unmarshal(payload, &t); err != nil {
		return Token{}, ErrTokenMalformed
	}
	signed := Signed{Kind: KindToken, Payload: payload, Sig: sig}
	if err := signed.Open(t.ClusterKey, KindToken, &t); err != nil {
		return Token{}, ErrTokenMalformed
	}
	if err := t.validate(); err != nil {
		return Token{}, fmt.Errorf("%w: %v", ErrTokenMalformed, err)
	}
	return t, nil
}

func (t Token) validate() error {
	if err := CheckName("cluster", t.Cluster); err != nil {
		return err
	}
	if err := CheckName("node", t.Name); err != nil {
		return err
	}
	if t.ID == "" || t.JoinKey.IsZero() || !t.JoinIP.Is6() || len(t.Anchors) == 0 {
		return errors.New("missing fields")
	}
	for _, a := range t.Anchors {
		if a.PublicKey.IsZero() || a.Endpoint == "" || len(a.OverlayIPs) == 0 {
			return fmt.Errorf("anchor %q incomplete", a.Name)
		}
	}
	for _, r := range t.Roles {
		if r != RoleAnchor && r != RoleControlPlane && r != RoleFabric {
			return fmt.Errorf("unknown role %q", r)
		}
	}
	if slices.Contains(t.Roles, RoleFabric) && slices.Contains(t.Roles, RoleControlPlane) {
		return errors.New("a node of the fabric only cannot run the control plane")
	}
	if slices.Contains(t.Roles, RoleAnchor) != (t.Endpoint != "") {
		return errors.New("an anchor's token needs its endpoint, and only an anchor's")
	}
	return nil
}

// Check verifies that the token belongs to cluster c and is still valid now.
func (t Token) Check(c Cluster, now time.Time) error {
	if t.Cluster != c.Name || !t.ClusterKey.Equal(c.PublicKey) {
		return fmt.Errorf("token is for cluster %q, not %q", t.Cluster, c.Name)
	}
	return t.CheckExpiry(now)
}

// CheckExpiry fails once the token has expired.
func (t Token) CheckExpiry(now time.Time) error {
	if !now.Before(t.Expires) {
		return fmt.Errorf("%w at %s", ErrTokenExpired, t.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}
