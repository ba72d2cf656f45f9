//go:build !fabric

package main

import (
	"fmt"
	"os"

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
