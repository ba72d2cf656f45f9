package nat

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"time"

	"github.com/pion/turn/v5"
)

// CredentialTTL is how long TURN credentials last; nodes renew them at
// half-life.
const CredentialTTL = 24 * time.Hour

// Credentials let a member use an anchor's TURN server until they expire.
// They follow the TURN REST scheme (user "EXPIRY:NAME", password the
// base64 HMAC-SHA1 of it under a shared secret), which coturn also speaks
// (use-auth-secret).
type Credentials struct {
	URLs     []string  `json:"urls"` // stun: and turn: URIs
	Username string    `json:"username"`
	Password string    `json:"password"`
	Expires  time.Time `json:"expires"`
}

// TURNSecret derives the anchors' shared TURN secret from the cluster's
// signing key: every anchor has it, and it never travels.
func TURNSecret(clusterKey []byte) string {
	m := hmac.New(sha256.New, clusterKey)
	m.Write([]byte("hepto/v1/turn-secret"))
	return base64.RawStdEncoding.EncodeToString(m.Sum(nil))
}

// NewCredentials makes credentials for a member.
func NewCredentials(secret, member string, urls []string) (Credentials, error) {
	user, pass, err := turn.GenerateLongTermTURNRESTCredentials(secret, member, CredentialTTL)
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{URLs: urls, Username: user, Password: pass, Expires: time.Now().Add(CredentialTTL).UTC().Truncate(time.Second)}, nil
}
