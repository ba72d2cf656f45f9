package containerd

import (
	"strconv"
	"strings"
)

// config is containerd's configuration: every path under the node's
// directory, so that several nodes share a machine; no listener but the
// socket; NRI off (its socket is machine-wide). The @NAME@ marks take
// quoted values (renderConfig); no text/template here: linking it keeps
// every exported method of the binary (see docs/architecture.md).
const config = `# Written by hepto at each start; changes are lost.
version = 3
root = @ROOT@
state = @STATE@
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs"]
imports = []

[grpc]
  address = @SOCKET@

[ttrpc]
  address = @TTRPC@

[debug]
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = @OPT@

[plugins."io.containerd.cri.v1.images"]
  snapshotter = @SNAPSHOTTER@
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = @SANDBOX@
  # Mirrors and credentials per registry, read at each pull:
  # REGISTRIES/HOST/hosts.toml in containerd's own format.
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = @REGISTRIES@

[plugins."io.containerd.cri.v1.runtime"]
  # Without CAP_SYS_RESOURCE (a container, a namespace lab) an adjustment
  # below containerd's own is refused.
  restrict_oom_score_adj = true
  # Pods' network namespaces under the state directory, not /var/run/netns.
  netns_mounts_under_state_dir = true
  # CPU samples of every container, asked of each shim: every second by
  # default, which keeps an idle node's containerd and shims busy. The
  # kubelet's CPU figures (summary API) are averages over this period.
  stats_collect_period = "30s"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [@CNIBINDIRS@]
    conf_dir = @CNICONFDIR@
    max_conf_num = 1
    use_internal_loopback = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = @RUNC@
        SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`

// renderConfig writes the configuration of o.
func renderConfig(o Options) ([]byte, error) {
	o = o.withPaths()
	q := strconv.Quote
	dirs := make([]string, len(o.CNIBinDirs))
	for i, d := range o.CNIBinDirs {
		dirs[i] = q(d)
	}
	r := strings.NewReplacer(
		"@ROOT@", q(o.Root), "@STATE@", q(o.State), "@SOCKET@", q(o.Socket), "@TTRPC@", q(o.TTRPCSocket),
		"@OPT@", q(o.Opt), "@SNAPSHOTTER@", q(o.Snapshotter), "@SANDBOX@", q(o.SandboxImage),
		"@CNIBINDIRS@", strings.Join(dirs, ", "), "@CNICONFDIR@", q(o.CNIConfDir), "@RUNC@", q(o.Runc),
		"@REGISTRIES@", q(o.Registries),
	)
	return []byte(r.Replace(config)), nil
}
