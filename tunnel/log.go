package tunnel

import (
	"context"
	"fmt"
	"log/slog"

	"golang.zx2c4.com/wireguard/device"
)

// deviceLogger sends wireguard-go's messages to slog at debug level: its
// "errors" include every failed send to an unreachable peer.
func deviceLogger(log *slog.Logger) *device.Logger {
	l := log.With("component", "wireguard")
	logf := func(level string) func(string, ...any) {
		return func(format string, args ...any) {
			if !l.Enabled(context.Background(), slog.LevelDebug) {
				return
			}
			l.Debug(fmt.Sprintf(format, args...), "wg_level", level)
		}
	}
	return &device.Logger{Verbosef: logf("verbose"), Errorf: logf("error")}
}
