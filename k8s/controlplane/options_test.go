package controlplane

import (
	"net/netip"
	"strings"
	"testing"
)

func TestOptions(t *testing.T) {
	good := Options{
		DataDir:            "/var/lib/hepto/kubernetes",
		NodeName:           "vps",
		AdvertiseAddresses: []netip.Addr{netip.MustParseAddr("10.42.0.1"), netip.MustParseAddr("fd42::1")},
		ServiceCIDRs:       []netip.Prefix{netip.MustParsePrefix("10.43.0.0/16"), netip.MustParsePrefix("fd43::/108")},
	}
	o, err := good.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.APIServerPort != 6443 || o.EtcdClientPort != 2379 || o.EtcdPeerPort != 2380 || o.ControllerManagerPort != 10257 || o.SchedulerPort != 10259 {
		t.Errorf("default ports: %+v", o)
	}
	if o.PKIDir != "/var/lib/hepto/kubernetes/pki" || len(o.BindAddresses) != 2 || o.Logger == nil || o.ComponentLogLevel == nil {
		t.Errorf("defaults: %+v", o)
	}

	for name, c := range map[string]struct {
		change func(*Options)
		want   string
	}{
		"no dir":      {func(o *Options) { o.DataDir = "" }, "data directory"},
		"no name":     {func(o *Options) { o.NodeName = "" }, "node name"},
		"no address":  {func(o *Options) { o.AdvertiseAddresses = nil }, "advertise"},
		"unspecified": {func(o *Options) { o.AdvertiseAddresses = []netip.Addr{netip.IPv4Unspecified()} }, "advertise"},
		"no services": {func(o *Options) { o.ServiceCIDRs = nil }, "service ranges"},
		"same family": {func(o *Options) {
			o.ServiceCIDRs = []netip.Prefix{netip.MustParsePrefix("10.43.0.0/16"), netip.MustParsePrefix("10.44.0.0/16")}
		}, "same family"},
		"three services":    {func(o *Options) { o.ServiceCIDRs = append(o.ServiceCIDRs, netip.MustParsePrefix("10.44.0.0/16")) }, "service ranges"},
		"families":          {func(o *Options) { o.ServiceCIDRs[0], o.ServiceCIDRs[1] = o.ServiceCIDRs[1], o.ServiceCIDRs[0] }, "one family"},
		"port out of range": {func(o *Options) { o.APIServerPort = 70000 }, "port"},
	} {
		o := good
		o.AdvertiseAddresses = append([]netip.Addr(nil), good.AdvertiseAddresses...)
		o.ServiceCIDRs = append([]netip.Prefix(nil), good.ServiceCIDRs...)
		c.change(&o)
		if _, err := o.withDefaults(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error about %q", name, err, c.want)
		}
	}
}
