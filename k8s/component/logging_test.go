package component

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

// klog's lines, and its contextual loggers', reach the slog logger at
// least at the level given; those below are dropped.
func TestRouteKlog(t *testing.T) {
	var buf bytes.Buffer
	RouteKlog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	klog.Info("routine line")
	klog.ErrorS(nil, "error line", "pod", "web-0")
	klog.Background().WithValues("component", "kubelet").Error(nil, "contextual error")
	klog.Flush()
	got := buf.String()
	if strings.Contains(got, "routine line") {
		t.Errorf("an Info line passed the Warn threshold:\n%s", got)
	}
	for _, want := range []string{`level=ERROR msg="error line" pod=web-0`, `level=ERROR msg="contextual error" component=kubelet`} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
}
