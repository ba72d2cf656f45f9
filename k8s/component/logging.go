package component

import (
	"context"
	"log/slog"
	"sync"

	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"
)

var routeOnce sync.Once

// RouteKlog sends klog, which every Kubernetes component logs through
// (the kubelet, kube-proxy, the control plane, client-go), to log,
// records below least dropped; nil least means Warn (at Info, a kubelet
// or an apiserver writes hundreds of lines at each start). klog is
// process-wide: the first call sets it, later ones do nothing. Components
// normally apply their logging configuration at start; several in one
// process would each apply it again, which logsapi refuses unless told to
// ignore an unchanged one.
func RouteKlog(log *slog.Logger, least slog.Leveler) {
	if least == nil {
		least = slog.LevelWarn
	}
	routeOnce.Do(func() {
		logsapi.ReapplyHandling = logsapi.ReapplyHandlingIgnoreUnchanged
		klog.SetSlogLogger(slog.New(LeastLevel(log.Handler(), least)))
	})
}

// LeastLevel is h without the records below least.
func LeastLevel(h slog.Handler, least slog.Leveler) slog.Handler { return leastLevel{h, least} }

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
