package kubelet

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	kubeletscheme "k8s.io/kubernetes/pkg/kubelet/apis/config/scheme"
	"k8s.io/kubernetes/pkg/kubelet/kubeletconfig/util/codec"
)

// The kubelet's configuration passes the kubelet's own validation, keeps
// everything under the node's directory, and serves on the overlay only.
func TestServer(t *testing.T) {
	o := Options{
		Dir: "/s/kubernetes/kubelet", PodLogsDir: "/s/kubernetes/pod-logs", NodeName: "pi-kitchen",
		NodeIPs:    []netip.Addr{netip.MustParseAddr("10.77.0.5"), netip.MustParseAddr("fd42::5")},
		Kubeconfig: "/s/kubernetes/node/kubelet.conf", ClientCA: "/s/kubernetes/node/ca.crt",
		CertFile: "/s/kubernetes/node/kubelet-serving.crt", KeyFile: "/s/kubernetes/node/kubelet-serving.key",
		Runtime: "/s/kubernetes/containerd/containerd.sock", CgroupRoot: "/hepto/pi-kitchen-0a1b2c3d",
		ClusterDNS: []netip.Addr{netip.MustParseAddr("10.77.0.5")},
		NodeLease:  time.Minute,
		Taints:     []corev1.Taint{{Key: "hepto.net/anchor", Effect: corev1.TaintEffectNoSchedule}},
	}
	s, err := server(o)
	if err != nil {
		t.Fatal(err)
	}
	c := s.KubeletConfiguration
	for _, check := range []struct {
		what      string
		got, want any
	}{
		{"address", c.Address, "10.77.0.5"},
		{"node IPs", s.NodeIP, "10.77.0.5,fd42::5"},
		{"root", s.RootDirectory, o.Dir},
		{"pod logs", c.PodLogsDir, o.PodLogsDir},
		{"read-only port", c.ReadOnlyPort, int32(0)},
		{"healthz port", c.HealthzPort, int32(0)},
		{"anonymous", c.Authentication.Anonymous.Enabled, false},
		{"authorization", c.Authorization.Mode, kubeletconfig.KubeletAuthorizationModeWebhook},
		{"cgroup root", c.CgroupRoot, o.CgroupRoot},
		{"fail on swap", c.FailSwapOn, false},
		{"fail on cgroup v1", c.FailCgroupV1, false},
		{"runtime", c.ContainerRuntimeEndpoint, "unix://" + o.Runtime},
		{"hostname", s.HostnameOverride, "pi-kitchen"},
		{"node lease", c.NodeLeaseDurationSeconds, int32(60)},
		{"pod PID limit", c.PodPidsLimit, int64(PodPidsLimit)},
	} {
		if check.got != check.want {
			t.Errorf("%s = %v, want %v", check.what, check.got, check.want)
		}
	}
	if len(c.RegisterWithTaints) != 1 || c.RegisterWithTaints[0].Key != "hepto.net/anchor" {
		t.Errorf("registered with taints %v", c.RegisterWithTaints)
	}
	if len(c.ClusterDNS) != 1 || c.ClusterDNS[0] != "10.77.0.5" {
		t.Errorf("cluster DNS %v", c.ClusterDNS)
	}
	o.NodeName = ""
	if _, err := server(o); err == nil {
		t.Error("a kubelet without a node name")
	}
}

// Standalone gives upstream's kubelet the settings hepto's runs with: its
// file decodes to the same configuration, its flags name the same files.
func TestStandalone(t *testing.T) {
	o := Options{
		Dir: "/s/kubelet", PodLogsDir: "/s/pod-logs", NodeName: "pi-kitchen",
		NodeIPs:    []netip.Addr{netip.MustParseAddr("10.77.0.5")},
		Kubeconfig: "/s/node/kubelet.conf", ClientCA: "/s/node/ca.crt",
		CertFile: "/s/node/serving.crt", KeyFile: "/s/node/serving.key",
		Runtime: "/s/containerd.sock", CgroupRoot: "/hepto/pi-kitchen", NodeLease: time.Minute,
	}
	config, flags, err := Standalone(o)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server(o)
	if err != nil {
		t.Fatal(err)
	}
	_, codecs, err := kubeletscheme.NewSchemeAndCodecs()
	if err != nil {
		t.Fatal(err)
	}
	got, err := codec.DecodeKubeletConfiguration(context.Background(), codecs, config)
	if err != nil {
		t.Fatalf("%v\n%s", err, config)
	}
	want := s.KubeletConfiguration
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"node lease", got.NodeLeaseDurationSeconds, want.NodeLeaseDurationSeconds},
		{"pod PID limit", got.PodPidsLimit, want.PodPidsLimit},
		{"address", got.Address, want.Address},
		{"cgroup root", got.CgroupRoot, want.CgroupRoot},
		{"anonymous", got.Authentication.Anonymous.Enabled, false},
		{"runtime", got.ContainerRuntimeEndpoint, want.ContainerRuntimeEndpoint},
		{"serialize pulls", got.SerializeImagePulls, want.SerializeImagePulls},
		{"shutdown grace", got.ShutdownGracePeriod, want.ShutdownGracePeriod},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v in the file, %v in hepto's kubelet", c.what, c.got, c.want)
		}
	}
	for _, f := range []string{"--kubeconfig=/s/node/kubelet.conf", "--hostname-override=pi-kitchen", "--node-ip=10.77.0.5", "--root-dir=/s/kubelet"} {
		if !slices.Contains(flags, f) {
			t.Errorf("flags %v lack %s", flags, f)
		}
	}
}
