package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/daemon"
)

func runCmd() *cobra.Command {
	var cfg daemon.Config
	var logLevel slog.Level
	cmd := &cobra.Command{
		Use:   "run [--join TOKEN] [--port N]",
		Short: "Run the node in the foreground (logs on stderr)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.State = stateDir(cmd)
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
	f.TextVar(&logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	return cmd
}
