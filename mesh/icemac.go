package mesh

import (
	"crypto/hmac"
	"encoding/json"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/key"
)

// iceMAC authenticates msg to the node of key peer: a member that passes
// it on (when no anchor answers) cannot forge or change it.
func (m *Mesh) iceMAC(msg control.ICEMessage, peer key.Public) ([]byte, error) {
	msg.MAC = nil
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	return control.MAC(m.o.PrivateKey, peer, "hepto/v1/ice-mac", b)
}

// checkICEMAC verifies a message's MAC from the node of key from.
func (m *Mesh) checkICEMAC(msg control.ICEMessage, from key.Public) bool {
	if len(msg.MAC) == 0 {
		return false
	}
	want, err := m.iceMAC(msg, from)
	return err == nil && hmac.Equal(want, msg.MAC)
}
