// Package kubelet runs the kubelet in hepto's process, configured in code
// (no configuration file, no flags): everything under the node's
// directory, its own cgroup parent, serving on the node's overlay address.
package kubelet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/component-base/configz"
	utilsysctl "k8s.io/component-helpers/node/util/sysctl"
	"k8s.io/klog/v2"
	kubeletconfigv1beta1 "k8s.io/kubelet/config/v1beta1"
	kubeletapp "k8s.io/kubernetes/cmd/kubelet/app"
	"k8s.io/kubernetes/cmd/kubelet/app/options"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	"k8s.io/kubernetes/pkg/kubelet/apis/config/validation"
	"k8s.io/kubernetes/pkg/kubelet/kubeletconfig/util/codec"
)

// Port is the kubelet's API port, on the node's overlay address.
const Port = 10250

// PodPidsLimit is how many processes a pod may have.
const PodPidsLimit = 4096

// Options configure a node's kubelet.
type Options struct {
	Dir        string       // the kubelet's root directory (pods' volumes, plugins, checkpoints)
	PodLogsDir string       // pods' logs
	NodeName   string       // the Kubernetes node name: the hepto node name
	NodeIPs    []netip.Addr // overlay IPv4 then IPv6; the first is where it serves
	Kubeconfig string       // client credentials towards the apiserver
	ClientCA   string       // the cluster CA, which authenticates the apiserver's requests
	CertFile   string       // serving certificate
	KeyFile    string
	Runtime    string       // containerd's socket
	CgroupRoot string       // this node's cgroup parent, so that several nodes share a machine
	ClusterDNS []netip.Addr // the pods' resolvers
	Domain     string       // the cluster's DNS zone ("": cluster.local)
	// NodeLease is the node lease's duration, renewed every quarter of
	// it (0: upstream's 40 s).
	NodeLease time.Duration
	// Taints the Node is registered with (only when the kubelet makes it).
	Taints []corev1.Taint
	// ProtectKernelDefaults: the kubelet changes no kernel setting and
	// stops if one differs from what it wants (Run sets them first).
	ProtectKernelDefaults bool
}

// server builds the kubelet's configuration.
func server(o Options) (*options.KubeletServer, error) {
	if o.NodeName == "" || len(o.NodeIPs) == 0 {
		return nil, errors.New("kubelet: node name and addresses needed")
	}
	s, err := options.NewKubeletServer()
	if err != nil {
		return nil, err
	}
	f := &s.KubeletFlags
	f.KubeConfig = o.Kubeconfig
	f.HostnameOverride = o.NodeName
	var ips []string
	for _, a := range o.NodeIPs {
		ips = append(ips, a.String())
	}
	f.NodeIP = strings.Join(ips, ",")
	f.RootDirectory = o.Dir
	f.CertDirectory = filepath.Join(o.Dir, "pki")

	c := &s.KubeletConfiguration
	c.ContainerRuntimeEndpoint = "unix://" + o.Runtime
	c.PodLogsDir = o.PodLogsDir
	c.VolumePluginDir = filepath.Join(o.Dir, "volume-plugins")
	c.Address = o.NodeIPs[0].String()
	c.Port = Port
	c.ReadOnlyPort = 0
	c.HealthzPort = 0 // hepto watches the node's Ready condition instead
	c.TLSCertFile, c.TLSPrivateKeyFile = o.CertFile, o.KeyFile
	c.Authentication.Anonymous.Enabled = false
	c.Authentication.Webhook.Enabled = true
	c.Authentication.X509.ClientCAFile = o.ClientCA
	c.Authorization.Mode = kubeletconfig.KubeletAuthorizationModeWebhook
	c.CgroupRoot = o.CgroupRoot
	c.CgroupsPerQOS = true
	c.CgroupDriver = "cgroupfs"
	// Home machines: cgroup v1 still found, and swap often on (pods are
	// kept from it: NoSwap).
	c.FailCgroupV1 = false
	c.FailSwapOn = false
	c.ClusterDomain = o.Domain
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	c.ClusterDNS = nil
	for _, a := range o.ClusterDNS {
		c.ClusterDNS = append(c.ClusterDNS, a.String())
	}
	c.ResolverConfig = "/etc/resolv.conf"
	c.RegisterNode = true
	c.RegisterWithTaints = o.Taints
	if o.NodeLease > 0 {
		c.NodeLeaseDurationSeconds = int32(o.NodeLease / time.Second)
	}
	// Pods get their time to stop when the machine shuts down; not when
	// hepto restarts (this needs systemd-logind, else it is a no-op).
	c.ShutdownGracePeriod = metav1.Duration{Duration: 30 * time.Second}
	c.ShutdownGracePeriodCriticalPods = metav1.Duration{Duration: 10 * time.Second}
	c.ProtectKernelDefaults = o.ProtectKernelDefaults
	// A pod cannot fork-bomb its node, whoever owns it (0: no limit).
	c.PodPidsLimit = PodPidsLimit
	c.LocalStorageCapacityIsolation = true
	c.SerializeImagePulls = false
	c.Logging.Format = "text"
	// Statistics from cAdvisor, upstream's default: PodAndContainerStatsFromCRI
	// panics on a pod being torn down, and a kubelet panic ends hepto
	// (docs/architecture.md).
	if err := validation.ValidateKubeletConfiguration(c, utilfeature.DefaultFeatureGate); err != nil {
		return nil, fmt.Errorf("kubelet configuration: %w", err)
	}
	if err := options.ValidateKubeletFlags(f); err != nil {
		return nil, fmt.Errorf("kubelet flags: %w", err)
	}
	return s, nil
}

// ErrRanOnce is Run's answer after a first kubelet ended: the kubelet
// registers process-wide state (metrics collectors) that a second one in
// the same process would register again, which panics.
var ErrRanOnce = errors.New("the kubelet ran once in this process: restart hepto to start it again")

var ran atomic.Bool

// Run runs the kubelet until ctx ends, once per process. The containers
// it started keep running: the next kubelet (the next hepto) adopts them.
func Run(ctx context.Context, o Options) error {
	for _, d := range []string{o.Dir, o.PodLogsDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if err := setKernelDefaults(utilsysctl.New()); err != nil {
		klog.FromContext(ctx).Info("kernel settings: the kubelet runs without protectKernelDefaults", "err", err)
	} else {
		o.ProtectKernelDefaults = true
	}
	s, err := server(o)
	if err != nil {
		return err
	}
	// configz names are process-wide; a previous run's is stale.
	configz.Delete("kubeletconfig")
	ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithValues("component", "kubelet"))
	if err := ensureCgroupRoot(klog.FromContext(ctx), o.CgroupRoot); err != nil {
		return err
	}
	// From here on, process-wide state is set.
	if ran.Swap(true) {
		return ErrRanOnce
	}
	deps, err := kubeletapp.UnsecuredDependencies(ctx, s, utilfeature.DefaultFeatureGate)
	if err != nil {
		return fmt.Errorf("kubelet dependencies: %w", err)
	}
	err = kubeletapp.Run(ctx, s, deps, utilfeature.DefaultFeatureGate)
	if ctx.Err() != nil {
		return nil
	}
	if err == nil {
		return errors.New("kubelet stopped unexpectedly")
	}
	return err
}

// Standalone is the configuration of this kubelet for a kubelet of its
// own (upstream's binary): its configuration file (KubeletConfiguration,
// YAML) and its flags. make bench-k8s runs its reference with it, so that
// both sides have the same settings.
func Standalone(o Options) (config []byte, flags []string, err error) {
	s, err := server(o)
	if err != nil {
		return nil, nil, err
	}
	config, err = codec.EncodeKubeletConfig(&s.KubeletConfiguration, kubeletconfigv1beta1.SchemeGroupVersion)
	if err != nil {
		return nil, nil, fmt.Errorf("kubelet configuration: %w", err)
	}
	f := s.KubeletFlags
	return config, []string{
		"--kubeconfig=" + f.KubeConfig,
		"--hostname-override=" + f.HostnameOverride,
		"--node-ip=" + f.NodeIP,
		"--root-dir=" + f.RootDirectory,
		"--cert-dir=" + f.CertDirectory,
	}, nil
}
