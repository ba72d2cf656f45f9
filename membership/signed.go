package membership

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
)

// Kinds of signed payloads; part of what is signed.
const (
	KindNode       = "node"
	KindMembership = "membership"
	KindToken      = "token"
	KindCluster    = "cluster"
)

// ErrBadSignature means a payload was not signed by the cluster key.
var ErrBadSignature = errors.New("signature does not match the cluster key")

// Signed is a payload and the cluster's signature over it.
type Signed struct {
	Kind    string `json:"kind"`
	Payload []byte `json:"payload"`
	Sig     []byte `json:"sig"`
}

func signedBytes(kind string, payload []byte) []byte {
	return append([]byte("hepto/v1/"+kind+"\x00"), payload...)
}

// Sign encodes v and signs it as kind.
func Sign(priv ed25519.PrivateKey, kind string, v any) (Signed, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return Signed{}, fmt.Errorf("encode %s: %w", kind, err)
	}
	return Signed{Kind: kind, Payload: payload, Sig: ed25519.Sign(priv, signedBytes(kind, payload))}, nil
}

// Open checks the signature and kind, then decodes the payload into v.
func (s Signed) Open(pub ed25519.PublicKey, kind string, v any) error {
	if s.Kind != kind {
		return fmt.Errorf("expected a signed %s, got %q", kind, s.Kind)
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, signedBytes(kind, s.Payload), s.Sig) {
		return fmt.Errorf("%s: %w", kind, ErrBadSignature)
	}
	if err := json.Unmarshal(s.Payload, v); err != nil {
		return fmt.Errorf("decode %s: %w", kind, err)
	}
	return nil
}
