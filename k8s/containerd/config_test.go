package containerd

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// The configuration is valid TOML, keeps every path under the node's
// directory, and turns off what is machine-wide.
func TestConfig(t *testing.T) {
	o := Options{Dir: `/var/lib/hepto/kubernetes/containerd`, CNIConfDir: "/var/lib/hepto/kubernetes/cni",
		CNIBinDirs: []string{"/usr/local/lib/hepto"}, SandboxImage: "registry.k8s.io/pause:3.10.2", Runc: "/usr/sbin/runc",
		Registries: "/var/lib/hepto/registries"}
	b, err := renderConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := toml.Unmarshal(b, &c); err != nil {
		t.Fatalf("not TOML: %v\n%s", err, b)
	}
	get := func(path ...string) any {
		var v any = c
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[p]
		}
		return v
	}
	cri := "io.containerd.cri.v1.runtime"
	for _, want := range []struct {
		path []string
		v    any
	}{
		{[]string{"root"}, o.Dir + "/root"},
		{[]string{"state"}, o.Dir + "/state"},
		{[]string{"grpc", "address"}, o.Dir + "/containerd.sock"},
		{[]string{"plugins", cri, "cni", "conf_dir"}, o.CNIConfDir},
		{[]string{"plugins", cri, "netns_mounts_under_state_dir"}, true},
		{[]string{"plugins", cri, "restrict_oom_score_adj"}, true},
		{[]string{"plugins", cri, "stats_collect_period"}, "30s"},
		{[]string{"plugins", cri, "containerd", "runtimes", "runc", "options", "BinaryName"}, "/usr/sbin/runc"},
		{[]string{"plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"}, o.SandboxImage},
		{[]string{"plugins", "io.containerd.cri.v1.images", "registry", "config_path"}, o.Registries},
		{[]string{"plugins", "io.containerd.grpc.v1.cri", "stream_server_address"}, "127.0.0.1"},
	} {
		if got := get(want.path...); got != want.v {
			t.Errorf("%s = %v, want %v", strings.Join(want.path, "."), got, want.v)
		}
	}
	if d, _ := get("disabled_plugins").([]any); len(d) == 0 || d[0] != "io.containerd.nri.v1.nri" {
		t.Errorf("disabled plugins %v, want NRI first", d)
	}
}
