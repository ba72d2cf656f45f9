package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hepto-net/hepto/state"
)

// Files of a PKI directory. Keys are 0600, certificates 0644.
const (
	ClusterCAName    = "ca"             // ca.crt, ca.key: clients, kubelets, the apiserver
	FrontProxyCAName = "front-proxy-ca" // front-proxy-ca.crt, .key: aggregated APIs
	EtcdCAName       = "etcd-ca"        // etcd-ca.crt, .key: etcd's server and clients
	SAKeyFile        = "sa.key"         // service-account token signing key
	SAPubFile        = "sa.pub"         // its public half, for verifiers
	SecretsKeyFile   = "secrets.key"    // Secrets' encryption keys in etcd (32 bytes each, base64, one a line; the first writes)
)

// PKI is a cluster's authorities and service-account key.
type PKI struct {
	Dir        state.Dir
	Cluster    *CA
	FrontProxy *CA
	Etcd       *CA
	SAKey      crypto.Signer
	// SecretsKeys encrypt Secrets in etcd (secretbox): a backup of etcd
	// or a copy of a control-plane node's disk shows no Secret without
	// them. The first encrypts, all decrypt (several during a rotation).
	SecretsKeys [][]byte
}

// SetLeafValidity sets how long the certificates of every CA last (the
// lab shortens it, to see them renewed).
func (p *PKI) SetLeafValidity(d time.Duration) {
	for _, ca := range []*CA{p.Cluster, p.FrontProxy, p.Etcd} {
		ca.LeafValidity = d
	}
}

// LoadOrCreate reads the cluster's authorities from dir, making those that
// do not exist yet. Made once (at `hepto init`), they are then only read.
func LoadOrCreate(dir string) (*PKI, error) {
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	d := state.Dir(dir)
	p := &PKI{Dir: d}
	var err error
	if p.Cluster, err = loadOrCreateCA(d, ClusterCAName, "hepto-ca"); err != nil {
		return nil, err
	}
	if p.FrontProxy, err = loadOrCreateCA(d, FrontProxyCAName, "hepto-front-proxy-ca"); err != nil {
		return nil, err
	}
	if p.Etcd, err = loadOrCreateCA(d, EtcdCAName, "hepto-etcd-ca"); err != nil {
		return nil, err
	}
	if p.SAKey, err = loadOrCreateSAKey(d); err != nil {
		return nil, err
	}
	if p.SecretsKeys, err = loadOrCreateSecretsKeys(d); err != nil {
		return nil, err
	}
	return p, nil
}

// Exists tells whether dir holds a cluster's CAs already.
func Exists(dir string) bool {
	d := state.Dir(dir)
	return d.Has(ClusterCAName+".crt") && d.Has(ClusterCAName+".key")
}

// Files are the names of what a control-plane node needs of the PKI
// directory: the CAs' certificates and keys, and the service-account key.
func Files() []string {
	var out []string
	for _, ca := range []string{ClusterCAName, FrontProxyCAName, EtcdCAName} {
		out = append(out, ca+".crt", ca+".key")
	}
	return append(out, SAKeyFile, SAPubFile, SecretsKeyFile)
}

// loadOrCreateSecretsKeys reads secrets.key, or makes it with one key. A
// cluster made before it had none: its first control-plane node to start
// makes it, and any other must be given a copy before it starts
// (docs/architecture.md).
func loadOrCreateSecretsKeys(d state.Dir) ([][]byte, error) {
	if d.Has(SecretsKeyFile) {
		return ReadSecretsKeys(string(d))
	}
	k, err := NewSecretsKey()
	if err != nil {
		return nil, err
	}
	keys := [][]byte{k}
	return keys, WriteSecretsKeys(string(d), keys)
}

// NewSecretsKey makes a key for Secrets.
func NewSecretsKey() ([]byte, error) {
	k := make([]byte, 32)
	_, err := rand.Read(k)
	return k, err
}

// ReadSecretsKeys reads the Secrets' keys of the PKI directory dir.
func ReadSecretsKeys(dir string) ([][]byte, error) {
	path := state.Dir(dir).Path(SecretsKeyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	for _, line := range strings.Fields(string(b)) {
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("%s: want keys of 32 bytes in base64, one a line", path)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no key", path)
	}
	return keys, nil
}

// WriteSecretsKeys writes the Secrets' keys of the PKI directory dir
// (0600, atomically), the one that encrypts first.
func WriteSecretsKeys(dir string, keys [][]byte) error {
	var b strings.Builder
	for _, k := range keys {
		if len(k) != 32 {
			return fmt.Errorf("a Secrets key has 32 bytes, not %d", len(k))
		}
		b.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	}
	return state.Dir(dir).WriteBytes(SecretsKeyFile, []byte(b.String()), 0o600)
}

// loadOrCreateSAKey reads sa.key, or makes it with sa.pub. sa.pub is
// written again from the key when it is missing or differs.
func loadOrCreateSAKey(d state.Dir) (crypto.Signer, error) {
	var key crypto.Signer
	if d.Has(SAKeyFile) {
		k, err := readKey(d.Path(SAKeyFile))
		if err != nil {
			return nil, err
		}
		key = k
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("service-account key: %w", err)
		}
		b, err := EncodeKey(k)
		if err != nil {
			return nil, err
		}
		if err := d.WriteBytes(SAKeyFile, b, 0o600); err != nil {
			return nil, err
		}
		key = k
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("service-account public key: %w", err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	if old, err := os.ReadFile(d.Path(SAPubFile)); err != nil || !bytes.Equal(old, pubPEM) {
		if err := d.WriteBytes(SAPubFile, pubPEM, 0o644); err != nil {
			return nil, err
		}
	}
	return key, nil
}

// Path is the full path of a file of the PKI directory.
func (p *PKI) Path(name string) string { return p.Dir.Path(name) }

func stateDir(dir string) state.Dir { return state.Dir(dir) }
