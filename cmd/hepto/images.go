package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/state"
)

// imagesCmd groups the commands on the node's container images.
func imagesCmd() *cobra.Command {
	c := &cobra.Command{Use: "images", Short: "The node's container images"}
	c.AddCommand(&cobra.Command{
		Use:   "import FILE",
		Short: "Import an image archive (docker save or OCI archive tar) into the running node's containerd",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			c := localapi.NewClient(state.Dir(stateDir(cmd)).Path(state.SocketFile)).WithTimeout(10 * time.Minute)
			if err := c.Do(cmd.Context(), "POST", "/v1/images/import", localapi.ImageImport{Path: path}, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %s\n", path)
			return nil
		},
	})
	return c
}
