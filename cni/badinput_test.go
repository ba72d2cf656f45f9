package cni

import (
	"encoding/json"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// Each bad input gets the specification's error code, a message and, where
// there is more to say, details; and changes nothing.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	good := e.pluginConf(nil)
	p := e.pod("pod")
	add := func(netns, ifname string) []string {
		v := []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=bad", "CNI_IFNAME=" + ifname}
		if netns != "" {
			v = append(v, "CNI_NETNS="+netns)
		}
		return v
	}
	// An interface of the pod already named eth0.
	e.run(p, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other")
	for _, tc := range []struct {
		name  string
		conf  string
		vars  []string
		code  uint
		inMsg string
	}{
		{"malformed JSON", `{"cniVersion":"1.1.0","name":`, add(p.NetnsPath(), "eth1"), types.ErrDecodingFailure, ""},
		{"unknown cniVersion", strings.Replace(good, `"1.1.0"`, `"7.0.0"`, 1), add(p.NetnsPath(), "eth1"), types.ErrIncompatibleCNIVersion, "incompatible"},
		{"invalid range", strings.Replace(good, `10.78.1.0/24`, `10.78.1.7/24`, 1), add(p.NetnsPath(), "eth1"), types.ErrInvalidNetworkConfig, "invalid"},
		{"missing CNI_NETNS", good, add("", "eth1"), types.ErrInvalidEnvironmentVariables, "CNI_NETNS"},
		{"CNI_NETNS not there", good, add("/run/netns/"+e.lab.Prefix+"-nothing", "eth1"), types.ErrInvalidEnvironmentVariables, "CNI_NETNS"},
		{"CNI_NETNS not a namespace", good, add("/etc/hostname", "eth1"), types.ErrInvalidEnvironmentVariables, "CNI_NETNS"},
		{"CNI_NETNS of the node", good, add(e.node.NetnsPath(), "eth1"), types.ErrInvalidEnvironmentVariables, "CNI_NETNS"},
		{"CNI_IFNAME taken", good, add(p.NetnsPath(), "eth0"), types.ErrInvalidEnvironmentVariables, "CNI_IFNAME"},
		{"CNI_IFNAME invalid", good, add(p.NetnsPath(), "a/b"), types.ErrInvalidEnvironmentVariables, ""},
		{"unknown command", good, []string{"CNI_COMMAND=FROB"}, types.ErrInvalidEnvironmentVariables, "CNI_COMMAND"},
		{"GC before 1.1.0", strings.Replace(good, `"1.1.0"`, `"1.0.0"`, 1), []string{"CNI_COMMAND=GC"}, types.ErrIncompatibleCNIVersion, "GC"},
		{"CHECK without prevResult", good, []string{"CNI_COMMAND=CHECK", "CNI_CONTAINERID=bad", "CNI_IFNAME=eth1", "CNI_NETNS=" + p.NetnsPath()}, types.ErrInvalidNetworkConfig, "prevResult"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te, out := e.exec(tc.conf, tc.vars...)
			if te == nil {
				t.Fatalf("no error: %s", out)
			}
			if te.Code != tc.code || !strings.Contains(te.Msg+te.Details, tc.inMsg) {
				t.Fatalf("got %s, want code %d mentioning %q", out, tc.code, tc.inMsg)
			}
			t.Logf("%d %s; %s", te.Code, te.Msg, te.Details)
		})
	}
	if a := e.attachments(); len(a) != 0 {
		t.Fatalf("bad input left reservations: %v", a)
	}
	if v := e.hostVeths(); len(v) != 0 {
		t.Fatalf("bad input left veths: %v", v)
	}
	if out := e.run(e.node, "ip", "-o", "addr"); strings.Contains(out, "10.78.") {
		t.Fatalf("the node got a pod address:\n%s", out)
	}

	t.Run("VERSION", func(t *testing.T) {
		_, out := e.exec("", "CNI_COMMAND=VERSION")
		var v struct{ SupportedVersions []string }
		if err := json.Unmarshal(out, &v); err != nil || !slices.Contains(v.SupportedVersions, "1.1.0") {
			t.Fatalf("%s: %v", out, err)
		}
	})
}

// An exhausted range: ADD says try again later, STATUS not available.
func TestExhaustedRangeAndStatus(t *testing.T) {
	e := newEnv(t, netip.MustParsePrefix("10.99.0.0/30")) // one address
	status := []string{"CNI_COMMAND=STATUS"}
	conf := e.pluginConf(nil)

	te, _ := e.exec(conf, status...)
	if te == nil || te.Code != types.ErrPluginNotAvailable || !strings.Contains(te.Msg, "daemon") {
		t.Fatalf("STATUS without the daemon: %v", te)
	}
	// The daemon's socket, as far as STATUS can tell.
	ln, err := net.Listen("unix", filepath.Join(e.state, "hepto.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if te, out := e.exec(conf, status...); te != nil {
		t.Fatalf("STATUS with the daemon: %s", out)
	}

	vars := func(id string, p string) []string {
		return []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + id, "CNI_IFNAME=eth0", "CNI_NETNS=" + p}
	}
	if te, out := e.exec(conf, vars("first", e.pod("first").NetnsPath())...); te != nil {
		t.Fatalf("first ADD: %s", out)
	}
	te, out := e.exec(conf, vars("second", e.pod("second").NetnsPath())...)
	if te == nil || te.Code != types.ErrTryAgainLater || !strings.Contains(te.Msg, "exhausted") {
		t.Fatalf("ADD in a full range: %s", out)
	}
	if te, out := e.exec(conf, status...); te == nil || te.Code != types.ErrPluginNotAvailable || !strings.Contains(te.Msg, "exhausted") {
		t.Fatalf("STATUS of a full range: %s", out)
	}
	if len(e.attachments()) != 1 || len(e.hostVeths()) != 1 {
		t.Fatalf("%v %v", e.attachments(), e.hostVeths())
	}
}
