package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/kubectl/pkg/cmd/annotate"
	"k8s.io/kubectl/pkg/cmd/apiresources"
	"k8s.io/kubectl/pkg/cmd/apply"
	"k8s.io/kubectl/pkg/cmd/attach"
	"k8s.io/kubectl/pkg/cmd/create"
	"k8s.io/kubectl/pkg/cmd/delete"
	"k8s.io/kubectl/pkg/cmd/describe"
	"k8s.io/kubectl/pkg/cmd/drain"
	cmdexec "k8s.io/kubectl/pkg/cmd/exec"
	"k8s.io/kubectl/pkg/cmd/expose"
	"k8s.io/kubectl/pkg/cmd/get"
	"k8s.io/kubectl/pkg/cmd/label"
	"k8s.io/kubectl/pkg/cmd/logs"
	"k8s.io/kubectl/pkg/cmd/patch"
	"k8s.io/kubectl/pkg/cmd/portforward"
	"k8s.io/kubectl/pkg/cmd/replace"
	"k8s.io/kubectl/pkg/cmd/rollout"
	"k8s.io/kubectl/pkg/cmd/run"
	"k8s.io/kubectl/pkg/cmd/scale"
	"k8s.io/kubectl/pkg/cmd/taint"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	kubectlversion "k8s.io/kubectl/pkg/cmd/version"
	"k8s.io/kubectl/pkg/cmd/wait"

	"github.com/hepto-net/hepto/k8s"
	_ "github.com/hepto-net/hepto/k8s/kubectli18n" // before kubectl's initialisers
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/state"
)

// kubectlCmd runs kubectl, in this process, with the admin kubeconfig of
// this control-plane node: the commands of newKubectl.
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
			k := newKubectl(flags, genericiooptions.IOStreams{In: os.Stdin, Out: cmd.OutOrStdout(), ErrOut: cmd.ErrOrStderr()})
			k.SetArgs(rest)
			return k.ExecuteContext(cmd.Context())
		},
	}
}

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
	f.StringVar(&req.User, "user", k8s.DefaultUser, "the person's name (what the audit log shows)")
	f.StringArrayVar(&req.Namespaces, "namespace", nil, "admin of this namespace only, made if missing (repeatable; none: cluster admin)")
	f.DurationVar(&req.TTL, "ttl", k8s.DefaultKubeconfigTTL, "how long the kubeconfig lasts")
	f.BoolVar(&list, "list", false, "list the kubeconfigs handed out and not revoked")
	f.StringVar(&revoke, "revoke", "", "take their rights from every kubeconfig of NAME")
	cmd.MarkFlagsMutuallyExclusive("list", "revoke")
	return cmd
}

// newKubectl is kubectl with the commands a cluster of homes is run with,
// not all of upstream's: no explain, edit, diff, kustomize, cp, proxy,
// debug, top, auth, certificate, config or plugins (a stock kubectl with
// `hepto kubeconfig` has them), and no go-template output (jsonpath
// instead). Their text/template would keep every exported method of the
// binary linked (docs/architecture.md, "Binary size").
func newKubectl(config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	warnings := rest.NewWarningWriter(streams.ErrOut, rest.WarningWriterOptions{Deduplicate: true})
	root := &cobra.Command{
		Use:   "kubectl",
		Short: "kubectl controls the Kubernetes cluster manager",
		Run:   func(c *cobra.Command, _ []string) { _ = c.Help() },
		PersistentPreRun: func(*cobra.Command, []string) {
			rest.SetDefaultWarningHandler(warnings)
		},
	}
	root.SetGlobalNormalizationFunc(cliflag.WarnWordSepNormalizeFunc)
	fl := root.PersistentFlags()
	config.AddFlags(fl)
	match := cmdutil.NewMatchVersionFlags(config)
	match.AddFlags(fl)
	f := cmdutil.NewFactory(match)
	root.AddCommand(
		create.NewCmdCreate(f, streams),
		expose.NewCmdExposeService(f, streams),
		run.NewCmdRun(f, streams),
		get.NewCmdGet("kubectl", f, streams),
		delete.NewCmdDelete(f, streams),
		rollout.NewCmdRollout("kubectl", f, streams),
		scale.NewCmdScale(f, streams),
		drain.NewCmdCordon(f, streams),
		drain.NewCmdUncordon(f, streams),
		drain.NewCmdDrain(f, streams),
		taint.NewCmdTaint(f, streams),
		describe.NewCmdDescribe("kubectl", f, streams),
		logs.NewCmdLogs(f, streams),
		attach.NewCmdAttach(f, streams),
		cmdexec.NewCmdExec(f, streams),
		portforward.NewCmdPortForward(f, streams),
		apply.NewCmdApply("kubectl", f, streams),
		patch.NewCmdPatch(f, streams),
		replace.NewCmdReplace(f, streams),
		wait.NewCmdWait(f, streams),
		label.NewCmdLabel(f, streams),
		annotate.NewCmdAnnotate("kubectl", f, streams),
		apiresources.NewCmdAPIVersions(f, streams),
		apiresources.NewCmdAPIResources(f, streams),
		kubectlversion.NewCmdVersion(f, streams),
	)
	root.SetGlobalNormalizationFunc(cliflag.WordSepNormalizeFunc)
	return root
}
