package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/daemon"
	"github.com/hepto-net/hepto/metrics"
)

// memoryLimit is the daemon's soft memory limit, unless GOMEMLIMIT says
// otherwise.
const memoryLimit = 48 << 20

func runCmd() *cobra.Command {
	var cfg daemon.Config
	var logLevel slog.Level
	cmd := &cobra.Command{
		Use:   "run [--join TOKEN] [--port N]",
		Short: "Run the node in the foreground (logs on stderr)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.State = stateDir(cmd)
			if os.Getenv("GOMEMLIMIT") == "" {
				// The tunnel's buffers are bounded (tunnel/pools.go), so a
				// soft limit only makes the collector return garbage sooner
				// instead of letting the heap double. Not with Kubernetes.
				cfg.MemoryLimit = memoryLimit
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return daemon.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Join, "join", "", "join token (first start only)")
	f.Uint16Var(&cfg.Port, "port", 0, "UDP port (default: an anchor's endpoint port, else random)")
	f.BoolVar(&cfg.Userspace, "userspace-networking", false, "no TUN device, no root: gVisor netstack, the host reaches the overlay through --socks5")
	f.StringVar(&cfg.SOCKS5, "socks5", daemon.DefaultSOCKS5, "with --userspace-networking: SOCKS5 proxy address into the overlay")
	f.StringArrayVar(&cfg.STUN, "stun", nil, "extra STUN server, as stun:HOST:PORT (repeatable); anchors' servers are always used")
	f.StringArrayVar(&cfg.TURN, "turn", nil, "extra TURN server, as turn:HOST:PORT?transport=udp (repeatable)")
	f.StringVar(&cfg.TURNSecret, "turn-secret", "", "shared secret of the --turn servers (TURN REST credentials, coturn's static-auth-secret)")
	f.BoolVar(&cfg.DNS.Disable, "no-dns", false, "do not answer DNS")
	f.StringSliceVar(&cfg.DNS.Listen, "dns-listen", daemon.DefaultDNSListen, "DNS on these IP:PORT too, beside the overlay addresses' port 53 (comma-separated; \"\" for none)")
	f.StringSliceVar(&cfg.DNS.Upstreams, "dns-upstream", nil, "resolvers for names outside the cluster, IP or IP:PORT (default: the nameservers of /etc/resolv.conf)")
	f.StringVar(&cfg.DNS.KubeDomain, "dns-kube-domain", "cluster.local", "Kubernetes DNS zone")
	f.StringVar(&cfg.CNIConfDir, "cni-conf-dir", daemon.DefaultCNIConfDir, "where the pod network configuration (10-hepto.conflist) goes; \"\" for none; not with --userspace-networking")
	f.StringVar(&cfg.Metrics, "metrics", metrics.DefaultAddr, "serve Prometheus metrics at http://ADDR/metrics (overlay:PORT: this node's overlay IPv4 address, the usual choice in a cluster; empty: off)")
	f.DurationVar(&cfg.RTTInterval, "rtt-interval", daemon.DefaultRTTInterval, "how often each link's round-trip time is measured (0: never)")
	f.DurationVar(&cfg.CertValidity, "cert-validity", 0, "how long Kubernetes certificates last (0: a year); for tests")
	f.MarkHidden("cert-validity")
	f.BoolVar(&cfg.UpstreamTimings, "upstream-timings", false, "the control plane with Kubernetes' and etcd's default timings, not hepto's; to compare them")
	f.MarkHidden("upstream-timings")
	f.DurationVar(&cfg.BackupInterval, "backup-interval", daemon.DefaultBackupInterval, "on the control-plane anchor: how often a backup is taken and copied to two other nodes (0: never)")
	f.DurationVar(&cfg.DirectRetry, "direct-retry", 0, "first direct attempt of a relayed pair after this, then at doubling intervals (default 30s)")
	f.MarkHidden("direct-retry")
	f.BoolVar(&cfg.Kubernetes, "kubernetes", true, "run Kubernetes on this node (the control plane on the node made by `hepto init`); never with --userspace-networking")
	f.TextVar(&logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	return cmd
}
