package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/daemon"
	"github.com/hepto-net/hepto/kubebin"
	"github.com/hepto-net/hepto/metrics"
)

// readJoinFile reads a join token from a file that only its owner may
// read, as ssh wants of a private key: a token is a way into the cluster.
func readJoinFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("join file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("join file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("join file %s: mode %04o lets other users read the token: chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("join file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("join file %s is empty", path)
	}
	return tok, nil
}

// memoryLimit is the daemon's soft memory limit, unless GOMEMLIMIT says
// otherwise.
const memoryLimit = 48 << 20

func runCmd() *cobra.Command {
	var cfg daemon.Config
	var logLevel slog.Level
	var joinFile string
	shareImages := true
	cmd := &cobra.Command{
		Use:   "run [--join TOKEN | --join-file FILE] [--port N]",
		Short: "Run the node in the foreground (logs on stderr)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.State = stateDir(cmd)
			if kubebin.Embedded && daemon.NeedsKubernetes(cfg) {
				// Exec returns only on failure: the fabric then runs
				// alone rather than not at all.
				err := kubebin.Exec(os.Args)
				fmt.Fprintln(os.Stderr, "hepto: Kubernetes cannot start, the fabric runs without it:", err)
			}
			if joinFile != "" {
				if cfg.Join != "" {
					return errors.New("--join and --join-file: one or the other")
				}
				var err error
				if cfg.Join, err = readJoinFile(joinFile); err != nil {
					return err
				}
			}
			if os.Getenv("GOMEMLIMIT") == "" {
				// The tunnel's buffers are bounded (tunnel/pools.go), so a
				// soft limit only makes the collector return garbage sooner
				// instead of letting the heap double. Not with Kubernetes.
				cfg.MemoryLimit = memoryLimit
			}
			cfg.NoImageSharing = !shareImages
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return daemon.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Join, "join", "", "join token (first start only)")
	f.StringVar(&joinFile, "join-file", "", "join token read from FILE, readable by its owner only (first start only; other users see a command line, not a 0600 file)")
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
	f.StringVar(&cfg.RelayPorts, "relay-ports", "", "on an anchor: TURN's relay ports, MIN-MAX (UDP; default 49152-65535); the UDP ports outside are free for published Services")
	f.BoolVar(&shareImages, "share-images", true, "pull images from the other nodes (this home's first) before the registries")
	f.StringVar(&cfg.VolumesDir, "volumes-dir", "", "where this node keeps its local persistent volumes (default STATE/volumes)")
	f.StringVar(&cfg.Zone, "zone", "", "this node's zone (its home, topology.kubernetes.io/zone); default: found from its LAN, shared by the machines behind one box")
	f.TextVar(&logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	return cmd
}
