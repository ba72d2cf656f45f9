package controlplane

import (
	"context"
	"log/slog"

	"k8s.io/klog/v2"

	"github.com/hepto-net/hepto/k8s/component"
)

// componentContext gives a component's contextual logger its name.
func componentContext(ctx context.Context, name string) context.Context {
	return klog.NewContext(ctx, klog.FromContext(ctx).WithValues("component", name))
}

// componentHandler is the handler of a component's own logger (etcd's).
func (c *ControlPlane) componentHandler(name string) slog.Handler {
	return component.LeastLevel(c.opts.Logger.Handler(), c.opts.ComponentLogLevel).WithAttrs([]slog.Attr{slog.String("component", name)})
}
