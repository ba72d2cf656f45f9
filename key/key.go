// Package key holds the node's WireGuard (Curve25519) keys and their text form.
package key

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"golang.org/x/crypto/curve25519"
)

// Len is the length in bytes of every key.
const Len = 32

// Private is a WireGuard private key. It never leaves the node that made it.
type Private [Len]byte

// Public is a WireGuard public key.
type Public [Len]byte

// NewPrivate returns a fresh, clamped private key.
func NewPrivate() (Private, error) {
	var k Private
	if _, err := rand.Read(k[:]); err != nil {
		return Private{}, fmt.Errorf("generate key: %w", err)
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k, nil
}

// Public derives the public key.
func (k Private) Public() Public {
	var p Public
	curve25519.ScalarBaseMult((*[Len]byte)(&p), (*[Len]byte)(&k))
	return p
}

// IsZero reports whether the key is unset.
func (k Private) IsZero() bool { return k == Private{} }

// IsZero reports whether the key is unset.
func (k Public) IsZero() bool { return k == Public{} }

// String is the base64 form used by wg(8); it is the private key itself, so
// never log it.
func (k Private) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// String is the base64 form used by wg(8).
func (k Public) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Hex is the form wireguard-go's configuration protocol takes.
func (k Private) Hex() string { return fmt.Sprintf("%x", k[:]) }

// Hex is the form wireguard-go's configuration protocol takes.
func (k Public) Hex() string { return fmt.Sprintf("%x", k[:]) }

// Less orders public keys; the greater key controls an ICE session.
func (k Public) Less(o Public) bool {
	for i := range k {
		if k[i] != o[i] {
			return k[i] < o[i]
		}
	}
	return false
}

func (k Private) MarshalText() ([]byte, error) { return []byte(k.String()), nil }
func (k Public) MarshalText() ([]byte, error)  { return []byte(k.String()), nil }

func (k *Private) UnmarshalText(b []byte) error { return parse(b, (*[Len]byte)(k)) }
func (k *Public) UnmarshalText(b []byte) error  { return parse(b, (*[Len]byte)(k)) }

// ParsePublic reads the base64 form.
func ParsePublic(s string) (Public, error) {
	var p Public
	return p, p.UnmarshalText([]byte(s))
}

func parse(b []byte, dst *[Len]byte) error {
	raw, err := base64.StdEncoding.DecodeString(string(b))
	if err != nil || len(raw) != Len {
		return fmt.Errorf("invalid key: want %d bytes in base64", Len)
	}
	copy(dst[:], raw)
	return nil
}

// Shared is the static Diffie-Hellman secret of k and p, which only the two
// key holders can compute: what two nodes MAC their messages with when a
// third passes them on.
func (k Private) Shared(p Public) ([Len]byte, error) {
	var out [Len]byte
	s, err := curve25519.X25519(k[:], p[:])
	if err != nil {
		return out, fmt.Errorf("shared key: %w", err)
	}
	copy(out[:], s)
	return out, nil
}
