package k8s

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"

	"github.com/hepto-net/hepto/k8s/apiendpoint"
	"github.com/hepto-net/hepto/k8s/controlplane"
	"github.com/hepto-net/hepto/k8s/nodecert"
	"github.com/hepto-net/hepto/localapi"
)

// LocalAPIPort is the node-local apiserver endpoint's port, on loopback:
// the kubelet, kube-proxy and hepto's own clients reach the apiserver
// through it (k8s/apiendpoint), whichever control-plane node answers.
const LocalAPIPort = 6444

// localAPIURL is the node-local endpoint's URL, in the node's kubeconfigs.
func localAPIURL() string {
	return "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(LocalAPIPort))
}

// apiTargets are the apiservers the node-local endpoint may reach: this
// node's own first, then the other control-plane nodes' by index.
func (n *Node) apiTargets() []string {
	var out []string
	if n.cp != nil {
		out = append(out, net.JoinHostPort("127.0.0.1", strconv.Itoa(controlplane.DefaultAPIServerPort)))
	}
	for _, m := range controlPlanes(n.o.Members()) {
		if m.Name != n.o.NodeName && len(m.OverlayIPs) > 0 {
			out = append(out, netip.AddrPortFrom(m.OverlayIPs[0], controlplane.DefaultAPIServerPort).String())
		}
	}
	return out
}

// runEndpoint serves the node-local apiserver endpoint once the node has
// the cluster CA (with its certificates).
func (n *Node) runEndpoint(ctx context.Context) error {
	if err := n.certsReady.Wait(ctx); err != nil {
		return nil
	}
	pem, err := os.ReadFile(nodecert.Dir(n.layout.Certs).Path(nodecert.CAFile))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return errors.New("apiserver endpoint: no certificate in the cluster CA file")
	}
	e, err := apiendpoint.New(apiendpoint.Options{
		Listen:  net.JoinHostPort("127.0.0.1", strconv.Itoa(LocalAPIPort)),
		Targets: n.apiTargets,
		CA:      pool,
		Logger:  n.log.With("component", "apiserver-endpoint"),
	})
	if err != nil {
		return err
	}
	n.endpoint.Store(e)
	defer n.endpoint.Store(nil)
	return e.Run(ctx)
}

// endpointStatus is the node-local endpoint for status, nil before it
// runs.
func (n *Node) endpointStatus() *localapi.APIServerStatus {
	e := n.endpoint.Load()
	if e == nil {
		return nil
	}
	return &localapi.APIServerStatus{Endpoint: localAPIURL(), Target: e.Current()}
}

// endpointRef holds the running endpoint.
type endpointRef = atomic.Pointer[apiendpoint.Endpoint]
