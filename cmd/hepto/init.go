package main

import (
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/daemon"
	"github.com/hepto-net/hepto/membership"
)

func initCmd() *cobra.Command {
	var o daemon.InitOptions
	var overlay4, overlay6, pods4, pods6, svc4, svc6 string
	cmd := &cobra.Command{
		Use:   "init --cluster NAME --endpoint HOST:PORT [--name NODE]",
		Short: "Create a cluster; this node becomes its first anchor",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.State = stateDir(cmd)
			for _, p := range []struct {
				flag string
				s    string
				dst  *netip.Prefix
			}{{"overlay-v4", overlay4, &o.Networks.OverlayV4}, {"overlay-v6", overlay6, &o.Networks.OverlayV6}, {"pods-v4", pods4, &o.Networks.PodsV4}, {"pods-v6", pods6, &o.Networks.PodsV6}, {"services-v4", svc4, &o.Networks.ServicesV4}, {"services-v6", svc6, &o.Networks.ServicesV6}} {
				if p.s == "" {
					continue
				}
				v, err := netip.ParsePrefix(p.s)
				if err != nil {
					return fmt.Errorf("--%s: %w", p.flag, err)
				}
				*p.dst = v
			}
			if err := daemon.Init(o); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %q created in %s; start it with: hepto run --state %s\n", o.Cluster, o.State, o.State)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Cluster, "cluster", "", "cluster name (a DNS label)")
	f.StringVar(&o.Endpoint, "endpoint", "", "public HOST:PORT (UDP) where this anchor is reached")
	f.StringVar(&o.Name, "name", "", "node name (default: host name)")
	f.StringVar(&overlay4, "overlay-v4", membership.DefaultOverlayV4.String(), "IPv4 prefix of node addresses")
	f.StringVar(&overlay6, "overlay-v6", "", "IPv6 /64 of node addresses (default: a random ULA)")
	f.StringVar(&pods4, "pods-v4", membership.DefaultPodsV4.String(), "IPv4 prefix split into per-node pod ranges")
	f.StringVar(&pods6, "pods-v6", "", "IPv6 prefix split into per-node pod ranges (default: in the ULA)")
	f.StringVar(&svc4, "services-v4", membership.DefaultServicesV4.String(), "IPv4 prefix of Kubernetes Services' cluster IPs")
	f.StringVar(&svc6, "services-v6", "", "IPv6 prefix of Kubernetes Services' cluster IPs (default: a /112 of the ULA)")
	f.IntVar(&o.Networks.PodBitsV4, "pod-bits-v4", 24, "prefix length of one node's IPv4 pod range")
	f.IntVar(&o.Networks.PodBitsV6, "pod-bits-v6", 64, "prefix length of one node's IPv6 pod range")
	cmd.MarkFlagRequired("cluster")
	cmd.MarkFlagRequired("endpoint")
	return cmd
}
