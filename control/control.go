// Package control is the protocol nodes speak to each other inside the
// overlay: joining through an anchor and spreading the signed membership.
// It is HTTP on TCP port Port of overlay addresses only, so every message
// travels inside WireGuard; WireGuard's cryptokey routing authenticates the
// sender's overlay address, and the membership is signed besides.
package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/membership"
)

// Port is the TCP port of the control protocol on overlay addresses.
const Port = 51821

// Paths of the protocol.
const (
	PathJoin       = "/v1/join"       // POST JoinRequest → JoinResponse (anchors)
	PathMembership = "/v1/membership" // GET → Signed membership (anchors); POST Signed membership (every node)
)

// MaxMessage bounds every message read, so a peer cannot make a node
// allocate without limit.
const MaxMessage = 1 << 20

// JoinRequest is sent by a joining node, through the tunnel opened with
// the token's one-time key.
type JoinRequest struct {
	Token     string     `json:"token"`
	PublicKey key.Public `json:"public_key"` // the node's own WireGuard key
}

// JoinResponse admits the node.
type JoinResponse struct {
	Cluster    membership.Signed `json:"cluster"`
	Node       membership.Signed `json:"node"`
	Membership membership.Signed `json:"membership"`
}

// ErrorReply is the body of a refused request.
type ErrorReply struct {
	Error string `json:"error"`
}

// Decode reads one JSON message of at most MaxMessage bytes and rejects
// trailing data.
func Decode(r io.Reader, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, MaxMessage+1))
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
	return req, nil
}
