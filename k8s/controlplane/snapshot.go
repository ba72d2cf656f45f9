package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// ErrEtcdNotRunning is Snapshot's error while etcd does not serve.
var ErrEtcdNotRunning = errors.New("etcd is not running on this node")

// Snapshot writes a consistent snapshot of etcd's keyspace to w, through
// etcd's own client API on loopback, with a client certificate of the
// etcd CA.
func (c *ControlPlane) Snapshot(ctx context.Context, w io.Writer) error {
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	err := c.etcdReady.Wait(wctx)
	cancel()
	if err != nil {
		return ErrEtcdNotRunning
	}
	kp, err := c.pki.EtcdClient("hepto-backup")
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(c.pki.Path("etcd-ca.crt"))
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return errors.New("etcd CA: no certificate")
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{c.etcdURL()},
		TLS:         &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, MinVersion: tls.VersionTLS12},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return err
	}
	defer cli.Close()
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("etcd snapshot: %w", err)
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return fmt.Errorf("etcd snapshot: %w", err)
	}
	return nil
}

// RestoreEtcd makes etcd's data directory for the control plane under
// dataDir (Options.DataDir) from a snapshot, as a one-member cluster of
// this node, as runEtcd starts it with the default ports. The directory
// must not exist yet.
func RestoreEtcd(snapshotPath, dataDir, nodeName string) error {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	peer := (&url.URL{Scheme: "https", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(DefaultEtcdPeerPort))}).String()
	return snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath:        snapshotPath,
		Name:                nodeName,
		OutputDataDir:       etcdDir(abs),
		PeerURLs:            []string{peer},
		InitialCluster:      nodeName + "=" + peer,
		InitialClusterToken: "etcd-cluster", // embed's default, as runEtcd leaves it
	})
}
