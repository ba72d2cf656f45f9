package daemon

import (
	"context"
	"strings"
	"testing"

	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/state"
)

// TestNeedsKubernetes: what the fabric build decides before starting the
// full one (kubebin).
func TestNeedsKubernetes(t *testing.T) {
	empty := t.TempDir()
	if !NeedsKubernetes(Config{State: empty, Kubernetes: true}) {
		t.Error("a node yet to join: no Kubernetes, want the full build (it joins and decides)")
	}
	dir := t.TempDir()
	if err := Init(InitOptions{State: dir, Cluster: "demo", Endpoint: "203.0.113.1:51820", Name: "anchor"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg  Config
		want bool
	}{
		{Config{State: dir, Kubernetes: true}, true},
		{Config{State: dir, Kubernetes: false}, false},
		{Config{State: dir, Kubernetes: true, Userspace: true}, false},
	} {
		if got := NeedsKubernetes(c.cfg); got != c.want {
			t.Errorf("%+v: %v, want %v", c.cfg, got, c.want)
		}
	}
	// The same node, admitted to the fabric only.
	st := state.Dir(dir)
	n, err := load(st)
	if err != nil {
		t.Fatal(err)
	}
	self := n.self
	self.Roles = []string{membership.RoleAnchor, membership.RoleFabric}
	signed, err := membership.Sign(n.signer, membership.KindNode, self)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Write(state.NodeFile, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.Write(state.MembersFile, membership.NewSet(signed), 0o644); err != nil {
		t.Fatal(err)
	}
	if NeedsKubernetes(Config{State: dir, Kubernetes: true}) {
		t.Error("a node admitted to the fabric only: Kubernetes wanted")
	}
}

// TestRemoveEtcdMemberAlone: a node without the control plane leaves etcd
// alone; the last control-plane node may not leave.
func TestRemoveEtcdMemberAlone(t *testing.T) {
	home := membership.Node{Name: "home-a", Index: 2}
	cp := membership.Node{Name: "anchor", Index: 1, Roles: []string{membership.RoleAnchor, membership.RoleControlPlane}}
	members := []membership.Node{cp, home}
	if err := removeEtcdMember(context.Background(), nil, members, home); err != nil {
		t.Errorf("a node without etcd: %v", err)
	}
	if err := removeEtcdMember(context.Background(), nil, members, cp); err == nil || !strings.Contains(err.Error(), "last control-plane node") {
		t.Errorf("the last control-plane node: %v", err)
	}
}
