package mesh

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/key"
)

// iceMAC authenticates msg to the node of key peer: a member that passes
// it on (when no anchor answers) cannot forge or change it.
func (m *Mesh) iceMAC(msg control.ICEMessage, peer key.Public) ([]byte, error) {
	shared, err := m.o.PrivateKey.Shared(peer)
	if err != nil {
		return nil, err
	}
	k := sha256.Sum256(append([]byte("hepto/v1/ice-mac\x00"), shared[:]...))
	msg.MAC = nil
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	h := hmac.New(sha256.New, k[:])
	h.Write(b)
	return h.Sum(nil), nil
}

// checkICEMAC verifies a message's MAC from the node of key from.
func (m *Mesh) checkICEMAC(msg control.ICEMessage, from key.Public) bool {
	if len(msg.MAC) == 0 {
		return false
	}
	want, err := m.iceMAC(msg, from)
	return err == nil && hmac.Equal(want, msg.MAC)
}
