package controlplane

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestFatalDoesNotExit: etcd's Fatal (a failed write to its log, a full
// disk) ends the goroutine that logs it and says why; the process, where
// the fabric lives, goes on.
func TestFatalDoesNotExit(t *testing.T) {
	got := make(chan error, 1)
	log := zapLogger(slog.DiscardHandler, func(err error) { got <- err })
	ended, after := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		log.Fatal("failed to save Raft hard state and entries", zap.Error(errors.New("write wal: no space left on device")))
		close(after)
	}()
	select {
	case err := <-got:
		if !strings.Contains(err.Error(), "failed to save Raft") || !strings.Contains(err.Error(), "no space left") {
			t.Errorf("fatal reported %q", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Fatal reported nothing")
	}
	<-ended
	select {
	case <-after:
		t.Fatal("the goroutine went on after Fatal")
	default:
	}
}
