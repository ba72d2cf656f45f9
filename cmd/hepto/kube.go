package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kubectl "k8s.io/kubectl/pkg/cmd"

	"github.com/hepto-net/hepto/k8s"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/state"
)

// kubectlCmd runs kubectl, in this process, with the admin kubeconfig of
// this control-plane node.
func kubectlCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl ARGS...",
		Short:              "kubectl with admin credentials (on a control-plane node)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			// --state is ours; everything else is kubectl's.
			dir, rest := "/var/lib/hepto", []string{}
			for i := 0; i < len(args); i++ {
				switch a := args[i]; {
				case a == "--state" && i+1 < len(args):
					dir = args[i+1]
					i++
				case len(a) > 8 && a[:8] == "--state=":
					dir = a[8:]
				default:
					rest = append(rest, a)
				}
			}
			kc := k8s.AdminKubeconfigFile(dir)
			if _, err := os.Stat(kc); err != nil {
				return fmt.Errorf("no admin kubeconfig (%w): is this a control-plane node, and has `hepto run` started Kubernetes here?", err)
			}
			flags := genericclioptions.NewConfigFlags(true).WithDeprecatedPasswordFlag().WithDiscoveryBurst(300).WithDiscoveryQPS(50.0)
			flags.KubeConfig = &kc
			k := kubectl.NewDefaultKubectlCommandWithArgs(kubectl.KubectlOptions{
				Arguments:   append([]string{"kubectl"}, rest...),
				ConfigFlags: flags,
				IOStreams:   genericiooptions.IOStreams{In: os.Stdin, Out: cmd.OutOrStdout(), ErrOut: cmd.ErrOrStderr()},
			})
			k.SetArgs(rest)
			return k.ExecuteContext(cmd.Context())
		},
	}
}

// kubeconfigCmd prints an admin kubeconfig whose server is this node's
// overlay address.
func kubeconfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print an admin kubeconfig (on a control-plane node)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := localapi.NewClient(state.Dir(stateDir(cmd)).Path(state.SocketFile))
			var kc localapi.Kubeconfig
			if err := c.Do(cmd.Context(), "GET", "/v1/kubeconfig", nil, &kc); err != nil {
				return err
			}
			_, err := fmt.Fprint(cmd.OutOrStdout(), kc.Kubeconfig)
			return err
		},
	}
}
