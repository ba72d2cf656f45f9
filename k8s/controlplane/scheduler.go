package controlplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/configz"
	sched "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"

	"github.com/hepto-net/hepto/k8s/pki"
)

func (c *ControlPlane) schedulerArgs(kubeconfig, cert, key, config string) []string {
	return append(SchedulerArgs(kubeconfig, cert, key, c.opts.SchedulerPort, c.timings()), "--config="+config)
}

// schedulerConfig is the scheduler's configuration: homes are failure
// domains, so the replicas of a Deployment or StatefulSet (any pod of a
// Service or controller without constraints of its own) are spread over
// zones, then nodes. Softly (ScheduleAnyway): a home that is down or full
// must not leave replicas Pending, as DoNotSchedule would; the spreading
// score's weight (upstream: 2) makes it prevail over the others (1 to 3)
// wherever a choice remains. With --config, the file gives what the
// deprecated flags gave: the kubeconfig and profiling.
const schedulerConfig = `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
enableProfiling: false
profiles:
- schedulerName: default-scheduler
  plugins:
    score:
      enabled:
      - name: PodTopologySpread
        weight: 6
  pluginConfig:
  - name: PodTopologySpread
    args:
      defaultingType: List
      defaultConstraints:
      - maxSkew: 1
        topologyKey: topology.kubernetes.io/zone
        whenUnsatisfiable: ScheduleAnyway
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: ScheduleAnyway
`

// writeSchedulerConfig writes schedulerConfig beside the kubeconfig.
func writeSchedulerConfig(kubeconfig string) (string, error) {
	p := filepath.Join(filepath.Dir(kubeconfig), "scheduler-config.yaml")
	if err := os.WriteFile(p, fmt.Appendf(nil, schedulerConfig, kubeconfig), 0o600); err != nil {
		return "", fmt.Errorf("scheduler configuration: %w", err)
	}
	return p, nil
}

// SchedulerArgs are kube-scheduler's flags, with its kubeconfig, serving
// certificate and key, and port; upstream's binary in make bench-k8s runs
// with them too.
func SchedulerArgs(kubeconfig, cert, key string, port int, t Timings) []string {
	return append(featureGateArgs(t),
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--tls-cert-file="+cert,
		"--tls-private-key-file="+key,
		"--profiling=false",
		// Elected by hepto (elect.go): upstream's election calls os.Exit
		// when its context ends.
		"--leader-elect=false",
	)
}

func (c *ControlPlane) runScheduler(ctx context.Context) error {
	if err := c.apiReady.Wait(ctx); err != nil {
		return nil
	}
	kubeconfig, cert, key, err := c.componentCredentials("scheduler", c.pki.Scheduler, pki.SchedulerUser)
	if err != nil {
		return err
	}
	return c.elected(ctx, compScheduler, kubeconfig, func(ctx context.Context) error {
		c.schedStopped.Close()
		defer c.schedStopped.Open()
		return c.scheduler(ctx, kubeconfig, cert, key)
	})
}

// scheduler runs the scheduler until ctx ends.
func (c *ControlPlane) scheduler(ctx context.Context, kubeconfig, cert, key string) error {
	config, err := writeSchedulerConfig(kubeconfig)
	if err != nil {
		return err
	}
	opts := schedoptions.NewOptions()
	if err := parseFlags("kube-scheduler", *opts.Flags, c.schedulerArgs(kubeconfig, cert, key, config)); err != nil {
		return err
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("feature gates: %w", err)
	}
	informerName, err := cache.NewInformerName("kube-scheduler")
	if err != nil {
		return err
	}
	defer informerName.Release()
	opts.InformerName = informerName

	runCtx, cancel := context.WithCancel(componentContext(ctx, compScheduler))
	defer cancel()
	configz.Delete("componentconfig")
	cc, s, err := sched.Setup(runCtx, opts)
	if err != nil {
		return err
	}
	go c.watch(runCtx, compScheduler, c.healthzProbe(c.opts.SchedulerPort), nil)
	// Without leader election, Run returns an error when its context ends.
	err = sched.Run(runCtx, cc, s)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
