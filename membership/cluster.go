package membership

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
)

// Cluster is what every node knows of its cluster; it is not secret.
type Cluster struct {
	Name      string            `json:"name"`
	Domain    string            `json:"domain"` // DNS domain of node names
	PublicKey ed25519.PublicKey `json:"public_key"`
	Networks  Networks          `json:"networks"`
}

// SigningKey is the cluster's private key, held by anchors only.
type SigningKey struct {
	PrivateKey ed25519.PrivateKey `json:"private_key"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// CheckName accepts names that are valid DNS labels, as node and cluster
// names become DNS names.
func CheckName(what, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid %s name %q: use 1-63 lower-case letters, digits and '-', as in a DNS label", what, name)
	}
	return nil
}

// NewCluster makes a cluster and its signing key. A zero Networks gets the
// defaults, with a random IPv6 ULA prefix.
func NewCluster(name string, nets Networks) (Cluster, SigningKey, error) {
	if err := CheckName("cluster", name); err != nil {
		return Cluster{}, SigningKey{}, err
	}
	if !nets.OverlayV6.IsValid() || !nets.PodsV6.IsValid() {
		ula, err := randomULA()
		if err != nil {
			return Cluster{}, SigningKey{}, err
		}
		d := DefaultNetworks(ula)
		if !nets.OverlayV6.IsValid() {
			nets.OverlayV6 = d.OverlayV6
		}
		if !nets.PodsV6.IsValid() {
			nets.PodsV6 = d.PodsV6
		}
	}
	nets = nets.withDefaults()
	if err := nets.Validate(); err != nil {
		return Cluster{}, SigningKey{}, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Cluster{}, SigningKey{}, fmt.Errorf("cluster key: %w", err)
	}
	c := Cluster{Name: name, Domain: name + ".internal", PublicKey: pub, Networks: nets}
	return c, SigningKey{PrivateKey: priv}, nil
}

// Validate checks a cluster read from disk or from the network.
func (c Cluster) Validate() error {
	if err := CheckName("cluster", c.Name); err != nil {
		return err
	}
	if len(c.PublicKey) != ed25519.PublicKeySize {
		return errors.New("cluster public key missing or malformed")
	}
	return c.Networks.Validate()
}

// randomULA is an RFC 4193 /48: fd00::/8 and a random 40-bit global ID.
func randomULA() (netip.Prefix, error) {
	var a [16]byte
	a[0] = 0xfd
	if _, err := rand.Read(a[1:6]); err != nil {
		return netip.Prefix{}, fmt.Errorf("ULA prefix: %w", err)
	}
	return netip.PrefixFrom(netip.AddrFrom16(a), 48), nil
}
