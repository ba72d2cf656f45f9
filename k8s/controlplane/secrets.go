package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apiserver/pkg/server/options/encryptionconfig"
	encryptioncontroller "k8s.io/apiserver/pkg/server/options/encryptionconfig/controller"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/hepto-net/hepto/k8s/pki"
	"github.com/hepto-net/hepto/state"
)

// encryptionReload is how often the apiserver reads its encryption
// configuration again (upstream: a minute): each step of a rotation
// waits for it.
const encryptionReload = 10 * time.Second

func init() { encryptioncontroller.EncryptionConfigFileChangePollDuration = encryptionReload }

// SecretsKeys are the Secrets' keys on disk, the one that encrypts first.
func (c *ControlPlane) SecretsKeys() ([][]byte, error) {
	p := c.PKI()
	if p == nil {
		return nil, fmt.Errorf("this control-plane node has not got the cluster's keys yet")
	}
	return pki.ReadSecretsKeys(string(p.Dir))
}

// SetSecretsKeys makes keys this node's Secrets keys, the first the one
// that encrypts: on disk (the PKI's, which joins and backups carry) and in
// the apiserver's encryption configuration, and returns once the apiserver
// uses them. A rotation sets every control-plane node's keys in turn:
// first the new key beside the old ones, then first, then alone, once
// every Secret is written again.
func (c *ControlPlane) SetSecretsKeys(ctx context.Context, keys [][]byte) error {
	p := c.PKI()
	if p == nil {
		return fmt.Errorf("this control-plane node has not got the cluster's keys yet")
	}
	if err := pki.WriteSecretsKeys(string(p.Dir), keys); err != nil {
		return err
	}
	file := encryptionFile(c.opts.DataDir)
	old, _ := os.ReadFile(file)
	conf := []byte(encryptionConfig(keys))
	if !bytes.Equal(old, conf) {
		if err := state.Dir(filepath.Dir(file)).WriteBytes(filepath.Base(file), conf, 0o600); err != nil {
			return err
		}
	}
	want, err := encryptionconfig.GetEncryptionConfigHash(file)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*encryptionReload+30*time.Second)
	defer cancel()
	for {
		if loadedEncryptionHash() == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the apiserver has not loaded the new encryption configuration: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// loadedEncryptionHash is the hash of the encryption configuration this
// process's apiserver uses, as its metrics say.
func loadedEncryptionHash() string {
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		return ""
	}
	for _, f := range families {
		if f.GetName() != "apiserver_encryption_config_controller_last_config_info" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "hash" {
					return l.GetValue()
				}
			}
		}
	}
	return ""
}
