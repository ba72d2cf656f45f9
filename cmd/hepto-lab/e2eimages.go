package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/lab/e2eimages"
)

func e2eImagesCmd() *cobra.Command {
	var o e2eimages.Options
	var quiet bool
	cmd := &cobra.Command{
		Use:   "e2e-images",
		Short: "build the images Kubernetes' end-to-end suite runs (agnhost, busybox, nginx, etcd, …) as OCI archives, from Go source and Debian packages",
		Long: `e2e-images builds the container images the conformance tests of Kubernetes'
end-to-end suite run, under the names the suite asks for, without a registry:
programs from Go source (the module given by --module), root filesystems from
Debian 12 packages (apt-get download, dpkg-deb -x). Each is written to
OUT/NAME-TAG.tar, which hepto imports from STATE/images or with
hepto images import. Needs apt-get and dpkg-deb; a second run reuses the
downloaded packages, root filesystems and programs kept in --cache.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Out == "" {
				return fmt.Errorf("--out is required")
			}
			abs, err := filepath.Abs(o.Module)
			if err != nil {
				return err
			}
			o.Module = abs
			if !quiet {
				o.Log = cmd.ErrOrStderr()
			}
			built, err := e2eimages.Build(cmd.Context(), o)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tARCHIVE\tREBUILD OF: FROM")
			for _, b := range built {
				info, err := os.Stat(b.Archive)
				if err != nil {
					return err
				}
				fmt.Fprintf(tw, "%s\t%s (%.1f MB)\t%s\n", b.Name, filepath.Base(b.Archive), float64(info.Size())/1e6, b.Source)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&o.Out, "out", "", "directory of the archives")
	cmd.Flags().StringVar(&o.Arch, "arch", runtime.GOARCH, "architecture of the images (GOARCH)")
	cmd.Flags().StringVar(&o.Cache, "cache", "", "where Debian packages, root filesystems and programs are kept between runs (default OUT/.cache)")
	cmd.Flags().StringVar(&o.Module, "module", "./third_party/e2eimages", "the Go module the images' programs are built from")
	cmd.Flags().StringSliceVar(&o.Only, "only", nil, "build only these images (full names, comma-separated)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress on stderr")
	return cmd
}
