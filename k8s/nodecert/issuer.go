package nodecert

import (
	"crypto/x509"
	"errors"
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
	// PKI is the cluster's CAs; nil while a joining control-plane node
	// has not got them yet.
	PKI func() *pki.PKI
	// APIServers are the apiservers' URLs, nearest first.
	APIServers func() []string
}

// Routes registers the issuer on the control protocol. A call must be
// signed by the member's hepto (control.Caller): the overlay address it
// comes from tells the machine, not the process.
func (is *Issuer) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+control.PathNodeCerts, is.handle)
}

func (is *Issuer) handle(w http.ResponseWriter, r *http.Request) {
	caller, err := control.RequireCaller(r, "kubelet certificates")
	if err != nil {
		control.WriteError(w, err)
		return
	}
	if !caller.RunsKubernetes() {
		control.WriteError(w, control.Refused("kubelet certificates: %s was admitted to the fabric only", caller.Name))
		return
	}
	m := Member{Name: caller.Name, IPs: caller.OverlayIPs}
	var req control.NodeCertsRequest
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

// Issue signs a member's certificates.
func (is *Issuer) Issue(m Member, req control.NodeCertsRequest) (control.NodeCerts, error) {
	creq, err := pki.KubeletClient(m.Name)
	if err != nil {
		return control.NodeCerts{}, err
	}
	sreq, err := pki.KubeletServing(m.Name, m.IPs)
	if err != nil {
		return control.NodeCerts{}, err
	}
	dreq, err := pki.DNSClient(m.Name)
	if err != nil {
		return control.NodeCerts{}, err
	}
	p := is.PKI()
	if p == nil {
		return control.NodeCerts{}, control.Unavailable(errors.New("this control-plane node has not got the cluster's CAs yet"))
	}
	out := control.NodeCerts{CA: p.Cluster.CertPEM, APIServers: is.APIServers()}
	signed := []*[]byte{&out.Client, &out.Serving, &out.Proxy, &out.DNS}
	for i, r := range []pki.Request{creq, sreq, pki.KubeProxyClient(), dreq} {
		pub, err := x509.ParsePKIXPublicKey(*keysOf(&req)[i])
		if err != nil {
			return control.NodeCerts{}, control.BadRequest(fmt.Errorf("%s: %w", pairs[i].key, err))
		}
		c, err := p.Cluster.Sign(r, pub)
		if err != nil {
			return control.NodeCerts{}, control.BadRequest(err)
		}
		*signed[i] = pki.EncodeCert(c.Raw)
	}
	return out, nil
}
