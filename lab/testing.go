package lab

import (
	"log/slog"
	"os"
	"testing"
)

// NeedRoot skips the test unless it runs as root, which the lab needs.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, iptables")
	}
}

// ForTest makes a lab that Close tears down when the test ends, pass, fail or
// panic. It skips the test without root, fails it without the lab's tools (so
// a missing install step shows), and logs to the test's output unless opts
// has a Logger.
func ForTest(t testing.TB, opts Options) *Lab {
	t.Helper()
	NeedRoot(t)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	l, err := New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}
