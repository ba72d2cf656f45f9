package nat

import (
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogger sends pion's logs to slog: its errors and warnings at debug
// level, as ICE on the Internet fails routinely (a candidate pair that
// cannot work, a late packet), the rest not at all.
func pionLogger(l *slog.Logger, scope string) logging.LoggerFactory {
	if l == nil {
		l = slog.Default()
	}
	return loggerFactory{l.With("pion", scope)}
}

type loggerFactory struct{ l *slog.Logger }

func (f loggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return leveled{f.l.With("scope", scope)}
}

type leveled struct{ l *slog.Logger }

func (leveled) Trace(string)          {}
func (leveled) Tracef(string, ...any) {}
func (leveled) Debug(string)          {}
func (leveled) Debugf(string, ...any) {}
func (leveled) Info(string)           {}
func (leveled) Infof(string, ...any)  {}
func (p leveled) Warn(msg string)     { p.l.Debug(msg) }
func (p leveled) Warnf(f string, a ...any) {
	p.l.Debug(fmt.Sprintf(f, a...))
}
func (p leveled) Error(msg string) { p.l.Debug(msg) }
func (p leveled) Errorf(f string, a ...any) {
	p.l.Debug(fmt.Sprintf(f, a...))
}
