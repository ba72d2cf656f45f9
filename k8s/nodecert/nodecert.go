// Package nodecert gives each node its kubelet certificates over the
// control protocol, inside WireGuard: the node keeps its keys and sends
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
)

// Dir is a node's certificate directory.
type Dir string

// Path is the path of one of its files.
func (d Dir) Path(name string) string { return filepath.Join(string(d), name) }

// Request loads the node's two keys, making them on first use (0600), and
// returns the request for their certificates.
func (d Dir) Request() (control.KubeletCertsRequest, error) {
	var req control.KubeletCertsRequest
	for _, k := range []struct {
		file string
		out  *[]byte
	}{{ClientKeyFile, &req.ClientKey}, {ServingKeyFile, &req.ServingKey}} {
		key, err := d.loadOrMakeKey(k.file)
		if err != nil {
			return req, err
		}
		if *k.out, err = x509.MarshalPKIXPublicKey(key.Public()); err != nil {
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
// writes them and the kubelet's kubeconfig (server: the first apiserver).
func (d Dir) Store(c control.KubeletCerts) error {
	if len(c.APIServers) == 0 {
		return errors.New("kubelet certificates: no apiserver given")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(c.CA) {
		return errors.New("kubelet certificates: no CA certificate")
	}
	for _, p := range []struct {
		cert  []byte
		key   string
		usage x509.ExtKeyUsage
	}{{c.Client, ClientKeyFile, x509.ExtKeyUsageClientAuth}, {c.Serving, ServingKeyFile, x509.ExtKeyUsageServerAuth}} {
		keyPEM, err := os.ReadFile(d.Path(p.key))
		if err != nil {
			return err
		}
		pair, err := tls.X509KeyPair(p.cert, keyPEM)
		if err != nil {
			return fmt.Errorf("kubelet certificate for %s: %w", p.key, err)
		}
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{p.usage}}); err != nil {
			return fmt.Errorf("kubelet certificate for %s: %w", p.key, err)
		}
	}
	st := state.Dir(d)
	for name, b := range map[string][]byte{CAFile: c.CA, ClientCertFile: c.Client, ServingCertFile: c.Serving} {
		if err := st.WriteBytes(name, b, 0o644); err != nil {
			return err
		}
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["hepto"] = &clientcmdapi.Cluster{Server: c.APIServers[0], CertificateAuthority: d.Path(CAFile)}
	// Files, not data: the kubelet's client reloads them when renewed.
	cfg.AuthInfos["kubelet"] = &clientcmdapi.AuthInfo{ClientCertificate: d.Path(ClientCertFile), ClientKey: d.Path(ClientKeyFile)}
	cfg.Contexts["hepto"] = &clientcmdapi.Context{Cluster: "hepto", AuthInfo: "kubelet"}
	cfg.CurrentContext = "hepto"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return st.WriteBytes(KubeconfigFile, b, 0o600)
}

// RenewAt is when the node's certificates should be renewed: once two
// thirds of the shorter one's life have passed. A missing or unreadable
// certificate, or one for another key, is due now.
func (d Dir) RenewAt() time.Time {
	var at time.Time
	for _, p := range [][2]string{{ClientCertFile, ClientKeyFile}, {ServingCertFile, ServingKeyFile}} {
		pair, err := tls.LoadX509KeyPair(d.Path(p[0]), d.Path(p[1]))
		if err != nil {
			return time.Time{}
		}
		c := pair.Leaf
		due := c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
		if at.IsZero() || due.Before(at) {
			at = due
		}
	}
	if _, err := os.Stat(d.Path(KubeconfigFile)); err != nil {
		return time.Time{}
	}
	return at
}
