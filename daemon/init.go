package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/state"
)

// InitOptions are the parameters of `hepto init`.
type InitOptions struct {
	State    string
	Cluster  string
	Endpoint string // public HOST:PORT (UDP) of this first anchor
	Name     string // default: the host name
	Networks membership.Networks
}

// Init creates a cluster in an empty state directory and makes this node
// its first anchor.
func Init(o InitOptions) error {
	st := state.Dir(o.State)
	if st.Has(state.ClusterFile) || st.Has(state.NodeFile) {
		return fmt.Errorf("%s already holds a node; remove it first to make a new cluster", o.State)
	}
	if _, err := endpointPort(o.Endpoint); err != nil {
		return err
	}
	if o.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("no --name and no host name: %w", err)
		}
		o.Name = h
	}
	c, sk, err := membership.NewCluster(o.Cluster, o.Networks)
	if err != nil {
		return err
	}
	priv, err := key.NewPrivate()
	if err != nil {
		return err
	}
	self, err := membership.NewNode(c.Networks, 1, o.Name, priv.Public())
	if err != nil {
		return err
	}
	self.Roles = []string{membership.RoleAnchor, membership.RoleControlPlane}
	self.Endpoint = o.Endpoint
	signedSelf, err := membership.Sign(sk.PrivateKey, membership.KindNode, self)
	if err != nil {
		return err
	}
	set := membership.NewSet(signedSelf)
	// Secrets first: a node file without its key would be useless.
	for _, f := range []struct {
		name string
		v    any
		perm os.FileMode
	}{
		{state.ClusterKeyFile, sk, 0o600},
		{state.NodeKeyFile, nodeKey{priv}, 0o600},
		{state.ClusterFile, c, 0o644},
		{state.MembersFile, set, 0o644},
		{state.NodeFile, signedSelf, 0o644},
	} {
		if err := st.Write(f.name, f.v, f.perm); err != nil {
			return err
		}
	}
	return nil
}

// nodeKey is the on-disk form of node.key.
type nodeKey struct {
	PrivateKey key.Private `json:"private_key"`
}

func endpointPort(ep string) (uint16, error) {
	host, port, err := net.SplitHostPort(ep)
	if err == nil && host == "" {
		err = errors.New("no host")
	}
	var p uint64
	if err == nil {
		p, err = strconv.ParseUint(port, 10, 16)
		if err == nil && p == 0 {
			err = errors.New("port 0")
		}
	}
	if err != nil {
		return 0, fmt.Errorf("invalid endpoint %q: want HOST:PORT (%v)", ep, err)
	}
	return uint16(p), nil
}
