package controlplane

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapLogger is a zap logger (etcd's) writing to slog, so that etcd's lines
// look like the rest of hepto's. Its Fatal does not end the process, where
// the fabric lives: it tells fatal (etcd's error) and ends the calling
// goroutine (etcd calls Fatal on a failed write to its log, e.g. a full
// disk).
func zapLogger(h slog.Handler, fatal func(error)) *zap.Logger {
	return zap.New(&zapCore{h: h}, zap.WithFatalHook(fatalHook(fatal)))
}

// fatalHook reports a Fatal line instead of exiting.
type fatalHook func(error)

func (f fatalHook) OnWrite(ce *zapcore.CheckedEntry, fields []zapcore.Field) {
	msg := ce.Message
	for _, fl := range fields {
		if err, ok := fl.Interface.(error); ok && fl.Type == zapcore.ErrorType {
			msg += ": " + err.Error()
		}
	}
	f(errors.New(msg))
	runtime.Goexit()
}

type zapCore struct {
	h slog.Handler
}

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

func (c *zapCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), slogLevel(l))
}

func (c *zapCore) With(fields []zapcore.Field) zapcore.Core {
	return &zapCore{h: c.h.WithAttrs(zapAttrs(fields))}
}

func (c *zapCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) && !expectedAtStop(e, nil) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *zapCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if expectedAtStop(e, fields) {
		return nil
	}
	r := slog.NewRecord(e.Time, slogLevel(e.Level), e.Message, 0)
	r.AddAttrs(zapAttrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (c *zapCore) Sync() error { return nil }

// expectedAtStop tells the errors etcd logs about its own listeners as it
// closes them: every stop has them, they say nothing.
func expectedAtStop(e zapcore.Entry, fields []zapcore.Field) bool {
	for _, f := range fields {
		if err, ok := f.Interface.(error); ok && f.Type == zapcore.ErrorType {
			msg := err.Error()
			if strings.Contains(msg, "use of closed network connection") || strings.Contains(msg, "http: Server closed") {
				return true
			}
		}
	}
	return false
}

// zapAttrs converts zap fields through zap's own map encoder.
func zapAttrs(fields []zapcore.Field) []slog.Attr {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	return attrs
}
