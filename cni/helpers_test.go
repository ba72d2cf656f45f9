package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/hepto-net/hepto/cni/ipam"
	"github.com/hepto-net/hepto/cni/netconf"
	"github.com/hepto-net/hepto/lab"
)

var testPods = []netip.Prefix{netip.MustParsePrefix("10.78.1.0/24"), netip.MustParsePrefix("fd00:1:2:100::/64")}

// env is a lab host playing a node, with the plugin configured on it.
type env struct {
	t     *testing.T
	ctx   context.Context
	lab   *lab.Lab
	node  *lab.Host
	state string
	pods  []netip.Prefix
	conf  []byte // the conflist
	rt    *lab.Runtime
}

func newEnv(t *testing.T, pods ...netip.Prefix) *env {
	t.Helper()
	lab.NeedRoot(t)
	if len(pods) == 0 {
		pods = testPods
	}
	l := lab.ForTest(t, lab.Options{})
	node, err := l.AddPublicHost("node")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: t.Context(), lab: l, node: node, state: t.TempDir(), pods: pods}
	// The daemon's part, which this package does not run.
	e.run(node, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	if e.conf, err = netconf.ConfList("hepto", netconf.DefaultMTU, e.state, pods); err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(e.conf)
	if err != nil {
		t.Fatal(err)
	}
	e.rt = lab.NewRuntime(node, list, []string{filepath.Dir(pluginBin)}, t.TempDir())
	return e
}

func (e *env) pod(name string) *lab.Host {
	e.t.Helper()
	h, err := e.lab.AddNamespace(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

func (e *env) attachments() []ipam.Attachment {
	e.t.Helper()
	atts, err := ipam.Load(filepath.Join(e.state, "cni", "hepto"))
	if err != nil {
		e.t.Fatal(err)
	}
	return atts
}

// hostVeths lists the plugin's veths on the node.
func (e *env) hostVeths() []string {
	e.t.Helper()
	var names []string
	err := e.node.Do(func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			if strings.HasPrefix(i.Name, "hep") {
				names = append(names, i.Name)
			}
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return names
}

// pluginConf is the plugin's own configuration, as a runtime passes it.
func (e *env) pluginConf(edit func(map[string]any)) string {
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(e.conf, &list); err != nil || len(list.Plugins) == 0 {
		e.t.Fatalf("conflist %s: %v", e.conf, err)
	}
	p := list.Plugins[0]
	p["cniVersion"], p["name"] = list.CNIVersion, list.Name
	if edit != nil {
		edit(p)
	}
	b, err := json.Marshal(p)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// exec runs the plugin on the node, by hand: env holds CNI_* variables.
// It returns the error the plugin printed, if any.
func (e *env) exec(stdin string, vars ...string) (*types.Error, []byte) {
	e.t.Helper()
	var out []byte
	var runErr error
	err := e.node.Do(func() error {
		c := exec.Command(pluginBin)
		c.Env = append([]string{"PATH=" + os.Getenv("PATH"), "CNI_PATH=" + filepath.Dir(pluginBin)}, vars...)
		c.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		out, runErr = c.Output()
		return nil
	})
	if err != nil {
		e.t.Fatalf("enter %s: %v", e.node.Name, err)
	}
	if runErr != nil && !errors.As(runErr, new(*exec.ExitError)) {
		e.t.Fatalf("plugin did not run: %v", runErr)
	}
	if runErr == nil {
		return nil, out
	}
	var te types.Error
	if err := json.Unmarshal(out, &te); err != nil || te.Msg == "" {
		e.t.Fatalf("plugin failed (%v) without a CNI error: %q", runErr, out)
	}
	return &te, out
}

func (e *env) run(h *lab.Host, name string, args ...string) string {
	e.t.Helper()
	out, err := h.Run(e.ctx, name, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func inRanges(ips []netip.Addr, ranges []netip.Prefix) error {
	if len(ips) != len(ranges) {
		return fmt.Errorf("%d addresses for %d ranges", len(ips), len(ranges))
	}
	for i, ip := range ips {
		if !ranges[i].Contains(ip) {
			return fmt.Errorf("%v not in %v", ip, ranges[i])
		}
	}
	return nil
}
