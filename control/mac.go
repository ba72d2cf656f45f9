package control

import (
	"crypto/hmac"
	"crypto/sha256"
	"time"

	"github.com/hepto-net/hepto/key"
)

// MAC authenticates msg between two members: HMAC-SHA256 under a key
// derived from their static WireGuard Diffie-Hellman secret and label (the
// kind of message). Only the two nodes' hepto, which hold the private
// keys, can make it: not another process on either node (a local user, a
// pod on the host network), nor a member that passes the message on.
func MAC(priv key.Private, peer key.Public, label string, msg []byte) ([]byte, error) {
	shared, err := priv.Shared(peer)
	if err != nil {
		return nil, err
	}
	k := sha256.Sum256(append([]byte(label+"\x00"), shared[:]...))
	h := hmac.New(sha256.New, k[:])
	h.Write(msg)
	return h.Sum(nil), nil
}

// CheckMAC verifies MAC's result for msg from peer.
func CheckMAC(priv key.Private, peer key.Public, label string, msg, mac []byte) bool {
	if len(mac) == 0 {
		return false
	}
	want, err := MAC(priv, peer, label, msg)
	return err == nil && hmac.Equal(want, mac)
}

// MACWindow is how far a signed request's time may be from the receiver's
// clock: an old request replayed is refused.
const MACWindow = 2 * time.Minute

// Fresh tells whether a request made at unix time t is within MACWindow.
func Fresh(t int64, now time.Time) bool {
	d := now.Sub(time.Unix(t, 0))
	return d < MACWindow && d > -MACWindow
}
