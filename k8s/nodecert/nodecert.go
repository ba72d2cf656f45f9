// Package nodecert gives each node its Kubernetes certificates (the
// kubelet's, kube-proxy's, its DNS server's) over the control protocol, inside WireGuard: the node keeps its keys and sends
// their public halves; a control-plane node knows the node by the overlay
// address it asks from and signs for that node alone. No bootstrap secret
// lies on disk anywhere.
package nodecert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/k8s/pki"
	"github.com/hepto-net/hepto/state"
)

// Files a node keeps in its certificate directory.
const (
	CAFile          = "ca.crt"
	ClientCertFile  = "kubelet-client.crt"
	ClientKeyFile   = "kubelet-client.key"
	ServingCertFile = "kubelet-serving.crt"
	ServingKeyFile  = "kubelet-serving.key"
	KubeconfigFile  = "kubelet.conf"
	ProxyCertFile   = "kube-proxy.crt"
	ProxyKeyFile    = "kube-proxy.key"
	ProxyConfFile   = "kube-proxy.conf"
	DNSCertFile     = "dns.crt"
	DNSKeyFile      = "dns.key"
	DNSConfFile     = "dns.conf"
)

// pair is one of the node's keys and its certificate.
type pair struct {
	key, cert string
	usage     x509.ExtKeyUsage
	conf      string // the kubeconfig of a client certificate
	user      string
}

var pairs = []pair{
	{ClientKeyFile, ClientCertFile, x509.ExtKeyUsageClientAuth, KubeconfigFile, "kubelet"},
	{ServingKeyFile, ServingCertFile, x509.ExtKeyUsageServerAuth, "", ""},
	{ProxyKeyFile, ProxyCertFile, x509.ExtKeyUsageClientAuth, ProxyConfFile, "kube-proxy"},
	{DNSKeyFile, DNSCertFile, x509.ExtKeyUsageClientAuth, DNSConfFile, "dns"},
}

// keysOf are the request's key fields, in the order of pairs.
func keysOf(r *control.NodeCertsRequest) []*[]byte {
	return []*[]byte{&r.ClientKey, &r.ServingKey, &r.ProxyKey, &r.DNSKey}
}

// certsOf are the answer's certificates, in the order of pairs.
func certsOf(c *control.NodeCerts) [][]byte {
	return [][]byte{c.Client, c.Serving, c.Proxy, c.DNS}
}

// Dir is a node's certificate directory.
type Dir string

// Path is the path of one of its files.
func (d Dir) Path(name string) string { return filepath.Join(string(d), name) }

// Request loads the node's keys, making them on first use (0600), and
// returns the request for their certificates.
func (d Dir) Request() (control.NodeCertsRequest, error) {
	var req control.NodeCertsRequest
	for i, out := range keysOf(&req) {
		key, err := d.loadOrMakeKey(pairs[i].key)
		if err != nil {
			return req, err
		}
		if *out, err = x509.MarshalPKIXPublicKey(key.Public()); err != nil {
			return req, err
		}
	}
	return req, nil
}

func (d Dir) loadOrMakeKey(name string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(d.Path(name))
	if errors.Is(err, os.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		pemKey, err := pki.EncodeKey(key)
		if err != nil {
			return nil, err
		}
		if err := state.Dir(d).WriteBytes(name, pemKey, 0o600); err != nil {
			return nil, err
		}
		return key, nil
	}
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM key (remove it to make a new one)", d.Path(name))
	}
	key, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (remove it to make a new one)", d.Path(name), err)
	}
	return key, nil
}

// Store checks the certificates against the node's keys and the CA, then
// writes them and the clients' kubeconfigs (server: the first apiserver).
func (d Dir) Store(c control.NodeCerts) error {
	if len(c.APIServers) == 0 {
		return errors.New("node certificates: no apiserver given")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(c.CA) {
		return errors.New("node certificates: no CA certificate")
	}
	certs := certsOf(&c)
	for i, p := range pairs {
		keyPEM, err := os.ReadFile(d.Path(p.key))
		if err != nil {
			return err
		}
		kp, err := tls.X509KeyPair(certs[i], keyPEM)
		if err != nil {
			return fmt.Errorf("certificate for %s: %w", p.key, err)
		}
		if _, err := kp.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{p.usage}}); err != nil {
			return fmt.Errorf("certificate for %s: %w", p.key, err)
		}
	}
	st := state.Dir(d)
	if err := st.WriteBytes(CAFile, c.CA, 0o644); err != nil {
		return err
	}
	for i, p := range pairs {
		if err := st.WriteBytes(p.cert, certs[i], 0o644); err != nil {
			return err
		}
		if p.conf == "" {
			continue
		}
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["hepto"] = &clientcmdapi.Cluster{Server: c.APIServers[0], CertificateAuthority: d.Path(CAFile)}
		// Files, not data: clients reload them when renewed.
		cfg.AuthInfos[p.user] = &clientcmdapi.AuthInfo{ClientCertificate: d.Path(p.cert), ClientKey: d.Path(p.key)}
		cfg.Contexts["hepto"] = &clientcmdapi.Context{Cluster: "hepto", AuthInfo: p.user}
		cfg.CurrentContext = "hepto"
		b, err := clientcmd.Write(*cfg)
		if err != nil {
			return err
		}
		if err := st.WriteBytes(p.conf, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// RenewAt is when the node's certificates should be renewed: once two
// thirds of the shortest one's life have passed. A missing or unreadable
// certificate or kubeconfig, or one for another key, is due now.
func (d Dir) RenewAt() time.Time {
	var at time.Time
	for _, p := range pairs {
		kp, err := tls.LoadX509KeyPair(d.Path(p.cert), d.Path(p.key))
		if err != nil {
			return time.Time{}
		}
		if p.conf != "" {
			if _, err := os.Stat(d.Path(p.conf)); err != nil {
				return time.Time{}
			}
		}
		c := kp.Leaf
		// Two thirds of the life from its issuance, not from its
		// backdated NotBefore (which, for a short life, is most of it).
		issued := c.NotBefore.Add(pki.Backdate)
		due := issued.Add(c.NotAfter.Sub(issued) * 2 / 3)
		if at.IsZero() || due.Before(at) {
			at = due
		}
	}
	return at
}
