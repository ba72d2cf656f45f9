package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Request describes a leaf certificate.
type Request struct {
	CommonName   string
	Organization []string // Kubernetes groups of a client certificate
	DNSNames     []string
	IPs          []netip.Addr
	Server       bool // TLS server authentication
	Client       bool // TLS client authentication
	Validity     time.Duration
}

// KeyPair is an issued certificate and its new key, PEM encoded.
type KeyPair struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// Issue makes a new key and a certificate for it, signed by the CA.
func (ca *CA) Issue(req Request) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("key for %s: %w", req.CommonName, err)
	}
	cert, err := ca.Sign(req, key.Public())
	if err != nil {
		return nil, err
	}
	keyPEM, err := EncodeKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, CertPEM: EncodeCert(cert.Raw), KeyPEM: keyPEM}, nil
}

// Sign makes a certificate for a key held elsewhere (a node's kubelet
// keys never leave their node).
func (ca *CA) Sign(req Request, pub crypto.PublicKey) (*x509.Certificate, error) {
	if req.CommonName == "" {
		return nil, errors.New("certificate without a common name")
	}
	if !req.Server && !req.Client {
		return nil, fmt.Errorf("certificate %s: neither server nor client", req.CommonName)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	validity := req.Validity
	if validity == 0 {
		validity = ca.LeafValidity
	}
	if validity == 0 {
		validity = LeafValidity
	}
	now := time.Now()
	// A certificate cannot outlive its CA.
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.CommonName, Organization: req.Organization},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		DNSNames:              slices.Compact(slices.Sorted(slices.Values(req.DNSNames))),
	}
	for _, ip := range uniqueAddrs(req.IPs) {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	if req.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if req.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", req.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// uniqueAddrs drops invalid and repeated addresses, and unmaps IPv4-mapped
// IPv6 ones, so that 127.0.0.1 is written once, as IPv4.
func uniqueAddrs(in []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range in {
		if !a.IsValid() {
			continue
		}
		a = a.Unmap().WithZone("")
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}
