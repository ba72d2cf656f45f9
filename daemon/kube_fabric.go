//go:build fabric

package daemon

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/k8s/publish/ports"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/supervisor"
	"github.com/hepto-net/hepto/tunnel"
)

// Built with -tags fabric, the daemon links no Kubernetes: `hepto run`
// starts the full executable instead where Kubernetes runs (package
// kubebin), so this one serves fabric-only nodes and the commands.

// kubeNode stands for Kubernetes where none is linked: a nil one answers
// as a node without, like a nil k8s.Node.
type kubeNode struct{}

var (
	errNotControlPlane = errors.New("this node does not run the Kubernetes control plane")
	errNoRuntime       = errors.New("no container runtime runs on this node")
	errUnknownUser     = errors.New("no kubeconfig of that name")
	errBadUser         = errors.New("bad kubeconfig request")
	errNoKubernetes    = errors.New("Kubernetes is not linked into this executable: `hepto run` starts the full one where Kubernetes runs")
)

func startKube(cfg Config, _ *node, _ *tunnel.Tunnel, _ *dnsService, _ ports.Range, _ *control.Client) *kubeNode {
	cfg.Logger.Error("no Kubernetes", "err", errNoKubernetes)
	return nil
}

func restoreEtcd(string, string, string) error { return errNoKubernetes }

func (*kubeNode) Status(context.Context) localapi.KubernetesStatus {
	return localapi.KubernetesStatus{Role: "none", Components: map[string]string{}}
}
func (*kubeNode) ComponentsUp() map[string]bool                  { return map[string]bool{} }
func (*kubeNode) Published(context.Context) []localapi.Published { return nil }
func (*kubeNode) CNIConfDir() string                             { return "" }
func (*kubeNode) CNIChain() []map[string]any                     { return nil }
func (*kubeNode) Routes(*http.ServeMux)                          {}
func (*kubeNode) Services() []supervisor.Service                 { return nil }
func (*kubeNode) Snapshot(context.Context, io.Writer) error      { return errNotControlPlane }
func (*kubeNode) ImportImage(context.Context, string) error      { return errNoRuntime }
func (*kubeNode) Kubeconfigs(context.Context) ([]localapi.KubeconfigEntry, error) {
	return nil, errNotControlPlane
}
func (*kubeNode) RevokeKubeconfigs(context.Context, string) (int, error) {
	return 0, errNotControlPlane
}
func (*kubeNode) RotateSecretsKey(context.Context) (localapi.SecretsRotated, error) {
	return localapi.SecretsRotated{}, errNotControlPlane
}
func (*kubeNode) UserKubeconfig(context.Context, localapi.KubeconfigRequest) ([]byte, error) {
	return nil, errNotControlPlane
}
