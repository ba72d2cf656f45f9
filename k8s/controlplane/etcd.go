package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
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

// peerAddr is where etcd's peers reach it: the node's overlay address
// (loopback for a control plane alone, in tests).
func (c *ControlPlane) peerAddr() string {
	return net.JoinHostPort(c.opts.AdvertiseAddresses[0].String(), strconv.Itoa(c.opts.EtcdPeerPort))
}

// peerURL is etcd's peer URL.
func (c *ControlPlane) peerURL() string {
	return (&url.URL{Scheme: "https", Host: c.peerAddr()}).String()
}

// etcdServerCert issues etcd's certificate into its files: its client port
// on loopback, its peer port on the overlay.
func (c *ControlPlane) etcdServerCert() (certFile, keyFile string, err error) {
	kp, err := c.pki.EtcdServer(c.opts.NodeName, c.opts.AdvertiseAddresses)
	if err != nil {
		return "", "", err
	}
	return kp.Write(c.layout.Certs, "etcd-server")
}

// etcdHasData tells whether etcd's data directory holds a member already:
// then etcd starts from it, whatever its initial cluster says.
func etcdHasData(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "member", "wal"))
	return err == nil
}

// initialMembers is etcd's first membership for an empty data directory:
// "" to start a cluster of this node alone, or the members of the cluster
// it was let into ("": this node starts the cluster).
func (c *ControlPlane) initialMembers(ctx context.Context) (string, error) {
	switch {
	case c.initialCluster != "":
		// Given with the CAs; used once: an empty directory later (a
		// failed first start) asks again.
		initial := c.initialCluster
		c.initialCluster = ""
		return initial, nil
	case c.opts.Join == nil:
		return "", nil
	}
	j, err := c.join(ctx)
	if errors.Is(err, ErrFirst) {
		return "", nil
	}
	return j.InitialCluster, err
}

func (c *ControlPlane) runEtcd(ctx context.Context) error {
	if err := c.prepared.Wait(ctx); err != nil {
		return nil
	}
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
	peer, _ := url.Parse(c.peerURL())

	cfg := embed.NewConfig()
	cfg.Name = c.opts.NodeName
	cfg.Dir = c.layout.Etcd
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.TickMs = uint(c.timings().Heartbeat.Milliseconds())
	cfg.ElectionMs = uint(c.timings().Election.Milliseconds())
	if !etcdHasData(c.layout.Etcd) {
		initial, err := c.initialMembers(ctx)
		if err != nil || ctx.Err() != nil {
			return err
		}
		if initial != "" {
			cfg.InitialCluster = initial
			cfg.ClusterState = embed.ClusterStateFlagExisting
		}
	}
	cfg.ClientTLSInfo = tls
	cfg.PeerTLSInfo = tls
	cfg.EnableGRPCGateway = false // the apiserver speaks gRPC
	fatal := make(chan error, 1)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapLogger(c.componentHandler(compEtcd), func(err error) {
		select {
		case fatal <- err:
		default:
		}
	}))

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer func() {
		// An etcd that failed (fatal) may not stop: do not wait for it.
		done := make(chan struct{})
		go func() { e.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(etcdStopDelay):
			c.opts.Logger.Warn("control plane: etcd did not stop in time")
		}
	}()
	select {
	case err := <-fatal:
		return err
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return err
	case <-time.After(etcdReadyTimeout):
		return fmt.Errorf("not ready after %v", etcdReadyTimeout)
	case <-ctx.Done():
		return nil
	}
	c.etcd.Store(e)
	defer c.etcd.Store(nil)
	go c.tendMembers(ctx, e)
	// A learner serves no linearizable request: the apiserver waits until
	// the leader promoted this member (it has caught up).
	for e.Server.IsLearner() {
		select {
		case <-ctx.Done():
			return nil
		case err := <-e.Err():
			return err
		case err := <-fatal:
			return fmt.Errorf("etcd failed: %w", err)
		case <-time.After(time.Second):
		}
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
	case err := <-fatal:
		// The fabric goes on; the state says why, and the supervisor
		// starts etcd again.
		return fmt.Errorf("etcd failed: %w", err)
	case <-e.Server.StopNotify():
		return errors.New("stopped unexpectedly")
	}
}
