package controlplane

import (
	"context"
	"time"

	"github.com/hepto-net/hepto/k8s/pki"
)

// The components' certificates (etcd's, the apiserver's serving and client
// ones, the controller-manager's and scheduler's, hepto's own admin
// client) are issued at each start and again every third of their
// validity while the control plane runs, into the same files. Every
// component reads its certificates from those files again: the
// apiserver's serving and front-proxy certificates through its dynamic
// file loaders, etcd's at each TLS handshake, the clients (kubeconfigs
// and rest configs that name files) through client-go's reloading. So a
// control plane that runs for years never presents an expired one.

// adminCert issues hepto's own admin client certificate into its files.
func (c *ControlPlane) adminCert() (certFile, keyFile string, err error) {
	kp, err := c.pki.Admin()
	if err != nil {
		return "", "", err
	}
	return kp.Write(c.layout.Certs, "admin-client")
}

// renewEvery is how often the certificates are issued again.
func (c *ControlPlane) renewEvery() time.Duration {
	v := c.opts.LeafValidity
	if v <= 0 {
		v = pki.LeafValidity
	}
	return v / 3
}

// renewCerts issues every component's certificates again every third of
// their validity.
func (c *ControlPlane) renewCerts(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.renewEvery()):
		}
		if err := c.issueAll(); err != nil {
			c.opts.Logger.Warn("control plane certificates not renewed; retrying in a minute", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Minute):
			}
			continue
		}
		c.opts.Logger.Info("control plane certificates renewed", "next", time.Now().Add(c.renewEvery()).Format(time.RFC3339))
	}
}

// issueAll writes every component's certificates again.
func (c *ControlPlane) issueAll() error {
	if _, _, err := c.etcdServerCert(); err != nil {
		return err
	}
	if _, err := c.apiServerCerts(); err != nil {
		return err
	}
	if _, _, _, err := c.componentCredentials("controller-manager", c.pki.ControllerManager, pki.ControllerManagerUser); err != nil {
		return err
	}
	if _, _, _, err := c.componentCredentials("scheduler", c.pki.Scheduler, pki.SchedulerUser); err != nil {
		return err
	}
	_, _, err := c.adminCert()
	return err
}
