package nat

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"time"

	"github.com/pion/turn/v5"

	"github.com/hepto-net/hepto/control"
)

// CredentialTTL is how long TURN credentials last; nodes renew them at
// half-life.
const CredentialTTL = 24 * time.Hour

// TURNSecret derives the anchors' shared TURN secret from the cluster's
// signing key: every anchor has it, and it never travels.
func TURNSecret(clusterKey []byte) string {
	m := hmac.New(sha256.New, clusterKey)
	m.Write([]byte("hepto/v1/turn-secret"))
	return base64.RawStdEncoding.EncodeToString(m.Sum(nil))
}

// NewCredentials makes credentials for a member.
func NewCredentials(secret, member string, urls []string) (control.TURNCredentials, error) {
	user, pass, err := turn.GenerateLongTermTURNRESTCredentials(secret, member, CredentialTTL)
	if err != nil {
		return control.TURNCredentials{}, err
	}
	return control.TURNCredentials{URLs: urls, Username: user, Password: pass, Expires: time.Now().Add(CredentialTTL).UTC().Truncate(time.Second)}, nil
}
