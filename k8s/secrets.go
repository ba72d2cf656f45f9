package k8s

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/k8s/controlplane"
	"github.com/hepto-net/hepto/k8s/pki"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/membership"
)

// secretsKeysTimeout bounds one control-plane node's step of a rotation:
// it answers once its apiserver has read the new configuration.
const secretsKeysTimeout = 2 * time.Minute

// RotateSecretsKey gives Secrets a new key on every control-plane node, in
// the order that keeps every Secret readable by every apiserver at each
// step: the new key beside the old ones (decrypting only), then first
// (encrypting), then every Secret written again under it, then alone. A
// control-plane node that does not answer stops the rotation before the
// new key encrypts anything it could not read; the command may be run
// again.
func (n *Node) RotateSecretsKey(ctx context.Context) (localapi.SecretsRotated, error) {
	var out localapi.SecretsRotated
	if n == nil || n.cp == nil || n.cp.AdminConfig() == nil {
		return out, ErrNotControlPlane
	}
	old, err := n.cp.SecretsKeys()
	if err != nil {
		return out, err
	}
	key, err := pki.NewSecretsKey()
	if err != nil {
		return out, err
	}
	cps := controlPlanes(n.o.Members())
	for _, keys := range [][][]byte{append(slices.Clone(old), key), append([][]byte{key}, old...)} {
		if err := n.setSecretsKeys(ctx, cps, keys); err != nil {
			return out, err
		}
	}
	client, err := kubernetes.NewForConfig(n.cp.AdminConfig())
	if err != nil {
		return out, err
	}
	if out.Secrets, err = rewriteSecrets(ctx, client); err != nil {
		return out, fmt.Errorf("writing the Secrets again under the new key (the old one still decrypts; run the rotation again): %w", err)
	}
	if err := n.setSecretsKeys(ctx, cps, [][]byte{key}); err != nil {
		return out, err
	}
	out.Key = controlplane.SecretsKeyName(key)
	for _, m := range cps {
		out.ControlPlanes = append(out.ControlPlanes, m.Name)
	}
	n.log.Info("secrets key rotated", "key", out.Key, "secrets", out.Secrets, "control_planes", out.ControlPlanes)
	return out, nil
}

// setSecretsKeys sets keys on each control-plane node: this one directly,
// the others over the control protocol.
func (n *Node) setSecretsKeys(ctx context.Context, cps []membership.Node, keys [][]byte) error {
	for _, m := range cps {
		var err error
		if m.Name == n.o.NodeName {
			err = n.cp.SetSecretsKeys(ctx, keys)
		} else if len(m.OverlayIPs) == 0 {
			err = errors.New("no overlay address")
		} else {
			cctx, cancel := context.WithTimeout(ctx, secretsKeysTimeout)
			err = n.o.Client.Post(cctx, m.OverlayIPs[0], control.PathSecretsKeys, control.SecretsKeys{Keys: keys}, nil)
			cancel()
		}
		if err != nil {
			return fmt.Errorf("secrets keys on control-plane node %s: %w", m.Name, err)
		}
	}
	return nil
}

// handleSecretsKeys serves another control-plane node's rotation.
func (n *Node) handleSecretsKeys(w http.ResponseWriter, r *http.Request) {
	m, err := control.RequireCaller(r, "setting the Secrets keys")
	if err != nil {
		control.WriteError(w, err)
		return
	}
	if !m.IsControlPlane() {
		control.WriteError(w, control.Refused("the Secrets keys are set by control-plane nodes only"))
		return
	}
	var req control.SecretsKeys
	if err := control.Decode(r.Body, &req); err != nil {
		control.WriteError(w, control.BadRequest(err))
		return
	}
	if len(req.Keys) == 0 {
		control.WriteError(w, control.BadRequest(errors.New("no key")))
		return
	}
	for _, k := range req.Keys {
		if len(k) != 32 {
			control.WriteError(w, control.BadRequest(fmt.Errorf("a key of %d bytes, want 32", len(k))))
			return
		}
	}
	if err := n.cp.SetSecretsKeys(r.Context(), req.Keys); err != nil {
		control.WriteError(w, control.Unavailable(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// rewriteSecrets writes every Secret again, unchanged: the apiserver
// stores it under the key that now encrypts (a value read with another
// key is stale, and written even when unchanged).
func rewriteSecrets(ctx context.Context, c kubernetes.Interface) (int, error) {
	done := 0
	opts := metav1.ListOptions{Limit: 100}
	for {
		list, err := c.CoreV1().Secrets("").List(ctx, opts)
		if err != nil {
			return done, err
		}
		for i := range list.Items {
			s := &list.Items[i]
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				_, err := c.CoreV1().Secrets(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
				if apierrors.IsConflict(err) {
					fresh, gerr := c.CoreV1().Secrets(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
					if gerr != nil {
						return gerr
					}
					s = fresh
				}
				return err
			})
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return done, fmt.Errorf("secret %s/%s: %w", s.Namespace, s.Name, err)
			default:
				done++
			}
		}
		if list.Continue == "" {
			return done, nil
		}
		opts.Continue = list.Continue
	}
}
