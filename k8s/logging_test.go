package k8s

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

// A worker (no control plane) routes klog, which its kubelet and
// kube-proxy log through, to hepto's logger too: not straight to stderr
// at Info.
func TestWorkerRoutesKlog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	New(Options{
		StateDir: t.TempDir(), NodeName: "home-a", Logger: log,
		Addresses: []netip.Addr{netip.MustParseAddr("10.77.0.5"), netip.MustParseAddr("fd42::5")},
	})
	buf.Reset()
	klog.Info("kubelet routine line")
	klog.Background().WithValues("component", "kube-proxy").Error(nil, "kube-proxy error line")
	klog.Flush()
	got := buf.String()
	if strings.Contains(got, "routine line") {
		t.Errorf("an Info line of a component reached the log (the least level is Warn):\n%s", got)
	}
	if !strings.Contains(got, `msg="kube-proxy error line" component=kube-proxy`) {
		t.Errorf("a component's error is not in hepto's log:\n%s", got)
	}
}
