package netconf

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// FuzzParseConf: any input gives a configuration the plugin can use, or a
// CNI error with a code of the specification; never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodConf))
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","stateDir":"/s","podCIDRs":["fd00::/120"],"mtu":1280}`))
	f.Add([]byte(`{"cniVersion":"0.4.0","name":"n","stateDir":"/s","podCIDRs":["10.0.0.0/30"],` +
		`"prevResult":{"cniVersion":"0.4.0","interfaces":[{"name":"eth0"}],"ips":[{"version":"4","address":"10.0.0.2/32","interface":0}]}}`))
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","stateDir":"/s","podCIDRs":["10.0.0.0/24"],"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`))
	f.Add([]byte(`{"cniVersion":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			var e *types.Error
			if !errors.As(err, &e) {
				t.Fatalf("not a CNI error: %T %v", err, err)
			}
			switch e.Code {
			case types.ErrIncompatibleCNIVersion, types.ErrDecodingFailure, types.ErrInvalidNetworkConfig:
			default:
				t.Fatalf("code %d: %v", e.Code, e)
			}
			return
		}
		if c.Name == "" || !filepath.IsAbs(c.StateDir) || len(c.PodCIDRs) == 0 || c.MTU < 576 {
			t.Fatalf("accepted %+v", c)
		}
		if filepath.Dir(c.IPAMDir()) != filepath.Join(c.StateDir, "cni") {
			t.Fatalf("store outside the state directory: %s", c.IPAMDir())
		}
		for _, p := range c.PodCIDRs {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("range %v", p)
			}
		}
	})
}
