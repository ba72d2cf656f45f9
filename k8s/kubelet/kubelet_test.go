package kubelet

import (
	"net/netip"
	"testing"
	"time"

	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
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
	if len(c.ClusterDNS) != 1 || c.ClusterDNS[0] != "10.77.0.5" {
		t.Errorf("cluster DNS %v", c.ClusterDNS)
	}
	o.NodeName = ""
	if _, err := server(o); err == nil {
		t.Error("a kubelet without a node name")
	}
}
