package controlplane

import (
	"fmt"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/hepto-net/hepto/k8s/pki"
	"github.com/hepto-net/hepto/state"
)

// Kubeconfig makes a kubeconfig for server (https://HOST:PORT) with a
// client certificate and the cluster CA, all embedded.
func Kubeconfig(server string, caPEM []byte, kp *pki.KeyPair, user string) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["hepto"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.CertPEM, ClientKeyData: kp.KeyPEM}
	cfg.Contexts["hepto"] = &clientcmdapi.Context{Cluster: "hepto", AuthInfo: user}
	cfg.CurrentContext = "hepto"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig for %s: %w", user, err)
	}
	return b, nil
}

// writeKubeconfig writes a kubeconfig (0600: it holds a key) and returns
// its path.
func writeKubeconfig(dir, name, server string, caPEM []byte, kp *pki.KeyPair, user string) (string, error) {
	b, err := Kubeconfig(server, caPEM, kp, user)
	if err != nil {
		return "", err
	}
	if err := state.Dir(dir).WriteBytes(name, b, 0o600); err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}

// writeKubeconfigFiles writes a kubeconfig that names the CA, certificate
// and key files rather than holding them, and returns its path.
func writeKubeconfigFiles(dir, name, server, caFile, certFile, keyFile, user string) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["hepto"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: caFile}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificate: certFile, ClientKey: keyFile}
	cfg.Contexts["hepto"] = &clientcmdapi.Context{Cluster: "hepto", AuthInfo: user}
	cfg.CurrentContext = "hepto"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return "", fmt.Errorf("kubeconfig for %s: %w", user, err)
	}
	if err := state.Dir(dir).WriteBytes(name, b, 0o600); err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}

// restConfig is a client configuration with a client certificate.
func restConfig(server string, caPEM []byte, kp *pki.KeyPair) *rest.Config {
	return &rest.Config{
		Host: server,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   caPEM,
			CertData: kp.CertPEM,
			KeyData:  kp.KeyPEM,
		},
	}
}
