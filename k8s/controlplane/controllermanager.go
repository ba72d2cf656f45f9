package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"k8s.io/component-base/configz"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"

	"github.com/hepto-net/hepto/k8s/pki"
)

func (c *ControlPlane) controllerManagerArgs(kubeconfig, cert, key string) []string {
	return ControllerManagerArgs(c.pki, kubeconfig, cert, key, c.opts.ControllerManagerPort, c.timings())
}

// ControllerManagerArgs are kube-controller-manager's flags, with its
// kubeconfig, serving certificate and key, and port; upstream's binary in
// make bench-k8s runs with them too.
func ControllerManagerArgs(p *pki.PKI, kubeconfig, cert, key string, port int, t Timings) []string {
	return append(featureGateArgs(t),
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--tls-cert-file="+cert,
		"--tls-private-key-file="+key,
		"--profiling=false",
		// Within the supervisor's stop timeout.
		"--controller-shutdown-timeout=3s",
		// Elected by hepto (elect.go): upstream's election exits the
		// process when the lease is lost.
		"--leader-elect=false",
		// Pod ranges come from hepto's membership, not from node IPAM.
		"--allocate-node-cidrs=false",
		"--configure-cloud-routes=false",
		"--controllers=*,-node-ipam-controller",
		// A node whose lease is not renewed for this long is NotReady, and
		// its pods leave their Services' endpoints (kubelets renew every
		// 15 s: NodeLease). When every node seems gone at once (the control plane's
		// own uplink is down), the node lifecycle controller evicts
		// nothing: clusters under 50 nodes stop evictions when a zone is
		// fully disrupted.
		"--node-monitor-grace-period="+NodeMonitorGrace.String(),
		"--use-service-account-credentials=true",
		"--root-ca-file="+p.Path("ca.crt"),
		"--service-account-private-key-file="+p.Path(pki.SAKeyFile),
		"--cluster-signing-cert-file="+p.Path("ca.crt"),
		"--cluster-signing-key-file="+p.Path("ca.key"),
	)
}

func (c *ControlPlane) runControllerManager(ctx context.Context) error {
	if err := c.apiReady.Wait(ctx); err != nil {
		return nil
	}
	kubeconfig, cert, key, err := c.componentCredentials("controller-manager", c.pki.ControllerManager, pki.ControllerManagerUser)
	if err != nil {
		return err
	}
	return c.elected(ctx, compControllerManager, kubeconfig, func(ctx context.Context) error {
		c.cmStopped.Close()
		defer c.cmStopped.Open()
		return c.controllerManager(ctx, kubeconfig, cert, key)
	})
}

// controllerManager runs the controller-manager until ctx ends.
func (c *ControlPlane) controllerManager(ctx context.Context, kubeconfig, cert, key string) error {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return err
	}
	fss := s.Flags(kcm.KnownControllers(), kcm.ControllersDisabledByDefault(), kcm.ControllerAliases())
	s.ParsedFlags = &fss
	if err := parseFlags("kube-controller-manager", fss, c.controllerManagerArgs(kubeconfig, cert, key)); err != nil {
		return err
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("feature gates: %w", err)
	}
	runCtx, cancel := context.WithCancel(componentContext(ctx, compControllerManager))
	defer cancel()
	cfg, err := s.Config(runCtx, kcm.KnownControllers(), kcm.ControllersDisabledByDefault(), kcm.ControllerAliases())
	if err != nil {
		return err
	}
	// configz names are process-wide; a previous run's is stale.
	configz.Delete(kcm.ConfigzName)
	go c.watch(runCtx, compControllerManager, c.healthzProbe(c.opts.ControllerManagerPort), nil)
	err = kcm.Run(runCtx, cfg.Complete())
	switch {
	case ctx.Err() != nil:
		return nil
	case err == nil:
		return errors.New("stopped unexpectedly")
	}
	return err
}
