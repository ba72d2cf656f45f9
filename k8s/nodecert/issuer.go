package nodecert

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/k8s/pki"
)

// Member is what the issuer knows of a node: its name and overlay
// addresses.
type Member struct {
	Name string
	IPs  []netip.Addr
}

// Issuer signs kubelet certificates on a control-plane node.
type Issuer struct {
	PKI *pki.PKI
	// Lookup finds the member an overlay address belongs to.
	Lookup func(netip.Addr) (Member, bool)
	// APIServers are the apiservers' URLs, nearest first.
	APIServers func() []string
}

// Routes registers the issuer on the control protocol.
func (is *Issuer) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+control.PathKubeletCerts, is.handle)
}

func (is *Issuer) handle(w http.ResponseWriter, r *http.Request) {
	m, ok := is.Lookup(control.RemoteAddr(r))
	if !ok {
		control.WriteError(w, control.Refused("kubelet certificates are for members only"))
		return
	}
	var req control.KubeletCertsRequest
	if err := control.Decode(r.Body, &req); err != nil {
		control.WriteError(w, control.BadRequest(err))
		return
	}
	certs, err := is.Issue(m, req)
	if err != nil {
		control.WriteError(w, err)
		return
	}
	control.WriteJSON(w, http.StatusOK, certs)
}

// Issue signs a member's kubelet client and serving certificates.
func (is *Issuer) Issue(m Member, req control.KubeletCertsRequest) (control.KubeletCerts, error) {
	client, err := x509.ParsePKIXPublicKey(req.ClientKey)
	if err != nil {
		return control.KubeletCerts{}, control.BadRequest(fmt.Errorf("client key: %w", err))
	}
	serving, err := x509.ParsePKIXPublicKey(req.ServingKey)
	if err != nil {
		return control.KubeletCerts{}, control.BadRequest(fmt.Errorf("serving key: %w", err))
	}
	creq, err := pki.KubeletClient(m.Name)
	if err != nil {
		return control.KubeletCerts{}, err
	}
	sreq, err := pki.KubeletServing(m.Name, m.IPs)
	if err != nil {
		return control.KubeletCerts{}, err
	}
	cc, err := is.PKI.Cluster.Sign(creq, client)
	if err != nil {
		return control.KubeletCerts{}, control.BadRequest(err)
	}
	sc, err := is.PKI.Cluster.Sign(sreq, serving)
	if err != nil {
		return control.KubeletCerts{}, control.BadRequest(err)
	}
	return control.KubeletCerts{
		CA:         is.PKI.Cluster.CertPEM,
		Client:     pki.EncodeCert(cc.Raw),
		Serving:    pki.EncodeCert(sc.Raw),
		APIServers: is.APIServers(),
	}, nil
}
