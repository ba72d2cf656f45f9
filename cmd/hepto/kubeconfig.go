package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/state"
)

// kubeconfigCmd prints a person's kubeconfig (server: this node's overlay
// address), lists them, or revokes a person's.
func kubeconfigCmd() *cobra.Command {
	var req localapi.KubeconfigRequest
	var list bool
	var revoke string
	cmd := &cobra.Command{
		Use:   "kubeconfig [--user NAME] [--namespace NS]... [--ttl DURATION] | --list | --revoke NAME",
		Short: "Print a person's kubeconfig: cluster admin, or admin of namespaces (on a control-plane node)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := localapi.NewClient(state.Dir(stateDir(cmd)).Path(state.SocketFile))
			out := cmd.OutOrStdout()
			switch {
			case list:
				var l []localapi.KubeconfigEntry
				if err := c.Do(cmd.Context(), "GET", "/v1/kubeconfigs", nil, &l); err != nil {
					return err
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USER\tID\tRIGHTS\tEXPIRES")
				for _, e := range l {
					rights := "admin of " + strings.Join(e.Namespaces, ",")
					if e.ClusterAdmin {
						rights = "cluster admin"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.User, e.ID, rights, e.Expires)
				}
				return tw.Flush()
			case revoke != "":
				var r localapi.Revoked
				if err := c.Do(cmd.Context(), "POST", "/v1/kubeconfig/revoke", localapi.RevokeRequest{User: revoke}, &r); err != nil {
					return err
				}
				_, err := fmt.Fprintf(out, "%s's kubeconfigs revoked (%d bindings deleted)\n", revoke, r.Bindings)
				return err
			}
			var kc localapi.Kubeconfig
			if err := c.Do(cmd.Context(), "POST", "/v1/kubeconfig", req, &kc); err != nil {
				return err
			}
			_, err := fmt.Fprint(out, kc.Kubeconfig)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.User, "user", localapi.DefaultUser, "the person's name (what the audit log shows)")
	f.StringArrayVar(&req.Namespaces, "namespace", nil, "admin of this namespace only, made if missing (repeatable; none: cluster admin)")
	f.DurationVar(&req.TTL, "ttl", localapi.DefaultKubeconfigTTL, "how long the kubeconfig lasts")
	f.BoolVar(&list, "list", false, "list the kubeconfigs handed out and not revoked")
	f.StringVar(&revoke, "revoke", "", "take their rights from every kubeconfig of NAME")
	cmd.MarkFlagsMutuallyExclusive("list", "revoke")
	return cmd
}
