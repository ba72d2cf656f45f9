// Command hepto-lab builds the project's lab — an Internet, anchors and
// homes behind NAT boxes, in network namespaces — and runs the demo or the
// benchmarks in it. It needs root; it removes everything it made on exit.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/kubebin"
)

func main() {
	root := &cobra.Command{
		Use:           "hepto-lab",
		Short:         "hepto in a lab of network namespaces: demo and benchmarks",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("hepto", defaultBin(), "hepto binary")
	root.AddCommand(demoCmd(), conformanceCmd(), benchCmd(), dnsBenchCmd(), dnsResolverCmd(), cniBenchCmd(), natBenchCmd(), idleBenchCmd(), k8sBenchCmd(), e2eImagesCmd())
	// Where hepto unpacks its Kubernetes executable (kubebin): the lab's
	// own directory, removed on exit, unless told.
	data := ""
	if os.Getenv(kubebin.EnvDir) == "" {
		if dir, err := os.MkdirTemp("", "hepto-lab-data-"); err == nil {
			data = dir
			os.Setenv(kubebin.EnvDir, dir)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root.ExecuteContext(ctx)
	stop()
	if data != "" {
		os.RemoveAll(data)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hepto-lab:", err)
		os.Exit(1)
	}
}

// defaultBin is the hepto beside this binary.
func defaultBin() string {
	exe, err := os.Executable()
	if err != nil {
		return "hepto"
	}
	return filepath.Join(filepath.Dir(exe), "hepto")
}

func heptoBin(cmd *cobra.Command) (string, error) {
	b, _ := cmd.Flags().GetString("hepto")
	abs, err := filepath.Abs(b)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("hepto binary: %w (run `make build`)", err)
	}
	return abs, nil
}

func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
