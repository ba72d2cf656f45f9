package pki

import (
	"fmt"
	"net/netip"
)

// Kubernetes identities of the components' client certificates.
const (
	AdminUser             = "hepto-admin"
	MastersGroup          = "system:masters"
	ControllerManagerUser = "system:kube-controller-manager"
	SchedulerUser         = "system:kube-scheduler"
	NodesGroup            = "system:nodes"
	NodeUserPrefix        = "system:node:"
	KubeProxyUser         = "system:kube-proxy"
	// DNSGroup holds the nodes' DNS servers, readers of what names need.
	DNSGroup = "hepto:dns"
	// APIServerKubeletUser is the apiserver's name towards kubelets.
	APIServerKubeletUser = "kube-apiserver-kubelet-client"
	// FrontProxyUser is the apiserver's name towards aggregated APIs; it
	// must be in --requestheader-allowed-names.
	FrontProxyUser = "front-proxy-client"
	// EtcdAPIServerUser is the apiserver's name towards etcd.
	EtcdAPIServerUser = "kube-apiserver-etcd-client"
)

// The in-cluster names of the kubernetes service.
var apiServerNames = []string{
	"kubernetes",
	"kubernetes.default",
	"kubernetes.default.svc",
	"kubernetes.default.svc.cluster.local",
	"localhost",
}

var loopbacks = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}

// ServiceIP is the kubernetes service's address in a service range: its
// first address after the network's own.
func ServiceIP(serviceCIDR netip.Prefix) (netip.Addr, error) {
	ip := serviceCIDR.Masked().Addr().Next()
	if !ip.IsValid() || !serviceCIDR.Contains(ip) {
		return netip.Addr{}, fmt.Errorf("service range %s has no room for the kubernetes service", serviceCIDR)
	}
	return ip, nil
}

// APIServerServing issues kube-apiserver's serving certificate, valid for
// ips, loopback, the kubernetes service's address in each service range,
// and the kubernetes service's names.
func (p *PKI) APIServerServing(ips []netip.Addr, serviceCIDRs []netip.Prefix) (*KeyPair, error) {
	sans := append(append([]netip.Addr{}, ips...), loopbacks...)
	for _, c := range serviceCIDRs {
		ip, err := ServiceIP(c)
		if err != nil {
			return nil, err
		}
		sans = append(sans, ip)
	}
	return p.Cluster.Issue(Request{CommonName: "kube-apiserver", DNSNames: apiServerNames, IPs: sans, Server: true})
}

// Admin issues a client certificate with every right (system:masters).
func (p *PKI) Admin() (*KeyPair, error) {
	return p.Cluster.Issue(Request{CommonName: AdminUser, Organization: []string{MastersGroup}, Client: true})
}

// ControllerManager issues kube-controller-manager's client certificate.
func (p *PKI) ControllerManager() (*KeyPair, error) {
	return p.Cluster.Issue(Request{CommonName: ControllerManagerUser, Client: true})
}

// Scheduler issues kube-scheduler's client certificate.
func (p *PKI) Scheduler() (*KeyPair, error) {
	return p.Cluster.Issue(Request{CommonName: SchedulerUser, Client: true})
}

// KubeletClient is a node's kubelet client certificate: the Node
// authorizer and NodeRestriction know it as the node NAME.
func KubeletClient(node string) (Request, error) {
	if node == "" {
		return Request{}, fmt.Errorf("kubelet client certificate: no node name")
	}
	return Request{CommonName: NodeUserPrefix + node, Organization: []string{NodesGroup}, Client: true}, nil
}

// KubeletServing is a node's kubelet serving certificate, valid for the
// node's addresses (the apiserver reaches kubelets by address) and its name.
func KubeletServing(node string, ips []netip.Addr) (Request, error) {
	if node == "" || len(ips) == 0 {
		return Request{}, fmt.Errorf("kubelet serving certificate: node name and addresses needed")
	}
	return Request{CommonName: NodeUserPrefix + node, Organization: []string{NodesGroup}, DNSNames: []string{node}, IPs: ips, Server: true}, nil
}

// KubeProxyClient is kube-proxy's client certificate: the user that the
// default system:node-proxier role is bound to.
func KubeProxyClient() Request {
	return Request{CommonName: KubeProxyUser, Client: true}
}

// DNSClient is a node's DNS server's client certificate, in the group
// that may read Services, EndpointSlices and Pods (role hepto:dns).
func DNSClient(node string) (Request, error) {
	if node == "" {
		return Request{}, fmt.Errorf("DNS client certificate: no node name")
	}
	return Request{CommonName: DNSGroup + ":" + node, Organization: []string{DNSGroup}, Client: true}, nil
}

// APIServerKubeletClient issues the apiserver's client certificate towards
// kubelets (logs, exec, port-forward).
func (p *PKI) APIServerKubeletClient() (*KeyPair, error) {
	return p.Cluster.Issue(Request{CommonName: APIServerKubeletUser, Organization: []string{MastersGroup}, Client: true})
}

// FrontProxyClient issues the apiserver's client certificate towards
// aggregated API servers, signed by the front-proxy CA.
func (p *PKI) FrontProxyClient() (*KeyPair, error) {
	return p.FrontProxy.Issue(Request{CommonName: FrontProxyUser, Client: true})
}

// EtcdServer issues etcd's certificate for its loopback client port and
// ips (peers). etcd also uses it as a client towards its peers.
func (p *PKI) EtcdServer(name string, ips []netip.Addr) (*KeyPair, error) {
	return p.Etcd.Issue(Request{CommonName: name, DNSNames: []string{"localhost"}, IPs: append(append([]netip.Addr{}, ips...), loopbacks...), Server: true, Client: true})
}

// EtcdClient issues a client certificate towards etcd.
func (p *PKI) EtcdClient(name string) (*KeyPair, error) {
	return p.Etcd.Issue(Request{CommonName: name, Client: true})
}

// Write writes kp as NAME.crt and NAME.key (0600) in dir.
func (kp *KeyPair) Write(dir, name string) (certPath, keyPath string, err error) {
	d := stateDir(dir)
	if err := d.WriteBytes(name+".key", kp.KeyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := d.WriteBytes(name+".crt", kp.CertPEM, 0o644); err != nil {
		return "", "", err
	}
	return d.Path(name + ".crt"), d.Path(name + ".key"), nil
}
