package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/hepto-net/hepto/k8s/component"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
)

// etcdReadyTimeout bounds etcd's start: replaying a large WAL takes a
// while, a wedged one forever.
const etcdReadyTimeout = 2 * time.Minute

// etcdStopDelay bounds how long etcd waits for the apiserver to stop first.
const etcdStopDelay = 8 * time.Second

// etcdURL is etcd's client URL: loopback only, TLS with client
// certificates, so that no local user reads the cluster's secrets.
func (c *ControlPlane) etcdURL() string {
	return (&url.URL{Scheme: "https", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.opts.EtcdClientPort))}).String()
}

// etcdServerCert issues etcd's certificate into its files.
func (c *ControlPlane) etcdServerCert() (certFile, keyFile string, err error) {
	kp, err := c.pki.EtcdServer(c.opts.NodeName, nil)
	if err != nil {
		return "", "", err
	}
	return kp.Write(c.layout.Certs, "etcd-server")
}

func (c *ControlPlane) runEtcd(ctx context.Context) error {
	certFile, keyFile, err := c.etcdServerCert()
	if err != nil {
		return err
	}
	tls := transport.TLSInfo{
		CertFile:       certFile,
		KeyFile:        keyFile,
		TrustedCAFile:  c.pki.Path("etcd-ca.crt"),
		ClientCertAuth: true,
	}
	client, _ := url.Parse(c.etcdURL())
	peer := &url.URL{Scheme: "https", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.opts.EtcdPeerPort))}

	cfg := embed.NewConfig()
	cfg.Name = c.opts.NodeName
	cfg.Dir = c.layout.Etcd
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.ClientTLSInfo = tls
	cfg.PeerTLSInfo = tls
	cfg.EnableGRPCGateway = false // the apiserver speaks gRPC
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapLogger(c.componentHandler(compEtcd)))

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return err
	case <-time.After(etcdReadyTimeout):
		return fmt.Errorf("not ready after %v", etcdReadyTimeout)
	case <-ctx.Done():
		return nil
	}
	c.states.Set(compEtcd, component.Running)
	c.etcdReady.Open()
	defer c.etcdReady.Close()
	select {
	case <-ctx.Done():
		wait, cancel := context.WithTimeout(context.Background(), etcdStopDelay)
		defer cancel()
		c.apiStopped.Wait(wait)
		return nil
	case err := <-e.Err():
		return err
	case <-e.Server.StopNotify():
		return errors.New("stopped unexpectedly")
	}
}
