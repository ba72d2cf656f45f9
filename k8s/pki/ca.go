// Package pki keeps a cluster's Kubernetes certificate authorities and
// service-account key, and issues the certificates its components use.
// Everything is ECDSA P-256, made with crypto/x509 alone.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"time"

	"github.com/hepto-net/hepto/state"
)

// Lifetimes: CAs outlive the cluster's hardware; leaf certificates are
// issued again at each start, so a year leaves ample margin.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 365 * 24 * time.Hour
	// Backdate covers clocks of other nodes that run a little behind: a
	// certificate's NotBefore is this long before its issuance.
	Backdate = 5 * time.Minute
)

// CA is a certificate authority: its certificate and signing key.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Key     crypto.Signer
	// LeafValidity is what its certificates are issued for when the
	// request says nothing (0: the package's LeafValidity).
	LeafValidity time.Duration
}

// Pool is a pool holding the CA alone, for verifying its certificates.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// newCA makes a self-signed CA.
func newCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: EncodeCert(der), Key: key}, nil
}

// loadOrCreateCA reads the CA NAME.crt and NAME.key from dir, or makes and
// writes it when neither file exists. One file without the other, or a file
// that does not decode, is an error: a new CA would silently invalidate
// every certificate issued by the old one.
func loadOrCreateCA(dir state.Dir, name, commonName string) (*CA, error) {
	certFile, keyFile := name+".crt", name+".key"
	hasCert, hasKey := dir.Has(certFile), dir.Has(keyFile)
	switch {
	case hasCert && hasKey:
		return loadCA(dir, certFile, keyFile)
	case hasCert || hasKey:
		return nil, fmt.Errorf("%s and %s: one is missing; restore it or remove both to make a new CA", dir.Path(certFile), dir.Path(keyFile))
	}
	ca, err := newCA(commonName)
	if err != nil {
		return nil, err
	}
	keyPEM, err := EncodeKey(ca.Key)
	if err != nil {
		return nil, err
	}
	// The key first: a certificate alone is refused at the next load.
	if err := dir.WriteBytes(keyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := dir.WriteBytes(certFile, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

func loadCA(dir state.Dir, certFile, keyFile string) (*CA, error) {
	certPEM, cert, err := readCert(dir.Path(certFile))
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", dir.Path(certFile))
	}
	key, err := readKey(dir.Path(keyFile))
	if err != nil {
		return nil, err
	}
	if !samePublic(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("%s does not match %s", dir.Path(keyFile), dir.Path(certFile))
	}
	return &CA{Cert: cert, CertPEM: certPEM, Key: key}, nil
}

// readCert reads a PEM file holding one certificate.
func readCert(path string) ([]byte, *x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s is corrupt: no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s is corrupt: %w", path, err)
	}
	return b, cert, nil
}

// readKey reads a PEM file holding one private key.
func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	key, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s is corrupt: %w", path, err)
	}
	return key, nil
}

// ParseKey decodes a PEM private key (PKCS#8 or SEC 1 EC).
func ParseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", key)
	}
	return s, nil
}

// EncodeCert is a certificate in PEM.
func EncodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// EncodeKey writes a key as SEC 1 "EC PRIVATE KEY", which every Kubernetes
// component and etcd read.
func EncodeKey(key crypto.Signer) ([]byte, error) {
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key of type %T: only ECDSA is written", key)
	}
	der, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func samePublic(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// newSerial is a random 128-bit serial number, as RFC 5280 allows.
func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// ensureDir makes dir, private to its owner.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("pki directory: %w", err)
	}
	return nil
}
