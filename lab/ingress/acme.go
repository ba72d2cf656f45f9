// Package ingress is the lab's side of publishing web sites with TLS:
// Let's Encrypt's test ACME server, Pebble, and a DNS server for the test
// names on a host of the lab's Internet (acme.go); and the recipe's
// ingress, Caddy behind a LoadBalancer Service, with its own ACME client
// (caddy.go). The e2e test and the demo use both.
package ingress

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/hepto-net/hepto/lab"
)

// Options configure the lab's ACME side.
type Options struct {
	Pebble string // the pebble program
	Web    string // the lab's web program (its DNS server)
	Dir    string // keys, configuration and logs
	// Names are the test names and their addresses (the anchors'), as
	// the DNS server answers them.
	Names map[string][]netip.Addr
	// Validity of the certificates Pebble issues (0: 90 days); short to
	// see them renewed.
	Validity time.Duration
}

// ACME is Pebble and the DNS server, on the host "acme" of the lab's
// Internet.
type ACME struct {
	Host   *lab.Host
	DirURL string // the ACME directory
	// APICA is the certificate of the CA of Pebble's own HTTPS (an ACME
	// client's acme_ca_root); APICAFile holds it.
	APICA     []byte
	APICAFile string
	DNS       string // the DNS server, IP:53
	mgmt      string
}

// Start runs Pebble (HTTP-01 on port 80, TLS-ALPN-01 on 443, as Let's
// Encrypt does) and the DNS server, and waits until Pebble answers.
func Start(ctx context.Context, l *lab.Lab, o Options) (*ACME, error) {
	h, err := l.AddPublicHost("acme")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	ip := h.IPv4.String()
	a := &ACME{Host: h, DirURL: "https://" + net.JoinHostPort(ip, "14000") + "/dir", DNS: net.JoinHostPort(ip, "53"),
		mgmt: "https://" + net.JoinHostPort(ip, "15000"), APICAFile: filepath.Join(o.Dir, "pebble-api-ca.pem")}
	certFile, keyFile := filepath.Join(o.Dir, "pebble-api.pem"), filepath.Join(o.Dir, "pebble-api.key")
	if a.APICA, err = writeServingCert(h, a.APICAFile, certFile, keyFile); err != nil {
		return nil, err
	}
	validity := int64(o.Validity / time.Second)
	if validity <= 0 {
		validity = 90 * 24 * 3600
	}
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress": net.JoinHostPort(ip, "14000"), "managementListenAddress": net.JoinHostPort(ip, "15000"),
		"certificate": certFile, "privateKey": keyFile, "httpPort": 80, "tlsPort": 443,
		"externalAccountBindingRequired": false, "keyAlgorithm": "ecdsa",
		"retryAfter": map[string]int{"authz": 1, "order": 1},
		"profiles":   map[string]any{"default": map[string]any{"description": "lab", "validityPeriod": validity}},
	}}
	b, _ := json.MarshalIndent(conf, "", "  ")
	confFile := filepath.Join(o.Dir, "pebble.json")
	if err := os.WriteFile(confFile, b, 0o644); err != nil {
		return nil, err
	}
	var records []string
	for name, addrs := range o.Names {
		for _, ad := range addrs {
			records = append(records, name+"="+ad.String())
		}
	}
	if _, err := h.Start(ctx, filepath.Join(o.Dir, "dns.log"), o.Web, append([]string{"dns-serve", a.DNS}, records...)...); err != nil {
		return nil, fmt.Errorf("the lab's DNS server: %w", err)
	}
	env := []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}
	if _, err := h.StartWith(ctx, filepath.Join(o.Dir, "pebble.log"), lab.StartOptions{Env: env},
		o.Pebble, "-config", confFile, "-dnsserver", a.DNS); err != nil {
		return nil, fmt.Errorf("pebble: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := a.get(ctx, a.DirURL)
		if err == nil {
			return a, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("pebble does not answer at %s: %w (log: %s)", a.DirURL, err, filepath.Join(o.Dir, "pebble.log"))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// get fetches a URL of Pebble's, from its host, trusting its API CA.
func (a *ACME) get(ctx context.Context, url string) (string, error) {
	return a.Host.Run(ctx, "curl", "-sSf", "--max-time", "10", "--cacert", a.APICAFile, url)
}

// Root is the root certificate Pebble signs with now (PEM): what a
// visitor trusts to check the sites' certificates. Pebble makes a new
// one at each start.
func (a *ACME) Root(ctx context.Context) (string, error) {
	return a.get(ctx, a.mgmt+"/roots/0")
}

// Intermediate is the certificate Pebble's leaf certificates are signed
// with (PEM).
func (a *ACME) Intermediate(ctx context.Context) (string, error) {
	return a.get(ctx, a.mgmt+"/intermediates/0")
}

// writeServingCert makes a CA and a certificate for Pebble's HTTPS on h's
// addresses; it returns the CA's certificate (PEM).
func writeServingCert(h *lab.Host, caFile, certFile, keyFile string) ([]byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lab ACME API CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "acme"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour), DNSNames: []string{"acme", "pebble"},
		IPAddresses: []net.IP{h.IPv4.AsSlice(), h.IPv6.AsSlice()}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	caCert, _ := x509.ParseCertificate(caDER)
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	for file, data := range map[string][]byte{
		caFile:   caPEM,
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			return nil, err
		}
	}
	return caPEM, nil
}
