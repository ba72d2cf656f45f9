package controlplane

import (
	"context"
	"log/slog"
	"sync"

	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"
)

var setupLogsOnce sync.Once

// setupLogging routes klog, which every component logs through, to
// hepto's slog logger, once per process. Components normally apply their
// logging configuration at start; several in one process would each apply
// it again, which logsapi refuses unless told to ignore an unchanged one.
func setupLogging(log *slog.Logger, least slog.Leveler) {
	setupLogsOnce.Do(func() {
		logsapi.ReapplyHandling = logsapi.ReapplyHandlingIgnoreUnchanged
		klog.SetSlogLogger(slog.New(leastLevel{log.Handler(), least}))
	})
}

// leastLevel drops records below a level.
type leastLevel struct {
	slog.Handler
	least slog.Leveler
}

func (h leastLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.least.Level() && h.Handler.Enabled(ctx, l)
}

func (h leastLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return leastLevel{h.Handler.WithAttrs(as), h.least}
}

func (h leastLevel) WithGroup(name string) slog.Handler {
	return leastLevel{h.Handler.WithGroup(name), h.least}
}

// componentContext gives a component's contextual logger its name.
func componentContext(ctx context.Context, name string) context.Context {
	return klog.NewContext(ctx, klog.FromContext(ctx).WithValues("component", name))
}

// componentHandler is the handler of a component's own logger (etcd's).
func (c *ControlPlane) componentHandler(name string) slog.Handler {
	return leastLevel{c.opts.Logger.Handler(), c.opts.ComponentLogLevel}.WithAttrs([]slog.Attr{slog.String("component", name)})
}
