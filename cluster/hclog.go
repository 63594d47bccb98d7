package cluster

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// slogAdapter implements hclog.Logger on top of a *slog.Logger, so Raft's
// logs go where the node's logs go.
type slogAdapter struct {
	l    *slog.Logger
	name string
	args []any
}

func newHCLogger(l *slog.Logger, name string) hclog.Logger {
	return &slogAdapter{l: l.With("component", name), name: name}
}

func toSlogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (a *slogAdapter) Log(level hclog.Level, msg string, args ...any) {
	for i, v := range args {
		if f, ok := v.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				args[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	a.l.Log(context.Background(), toSlogLevel(level), msg, args...)
}
func (a *slogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *slogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *slogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *slogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *slogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }
func (a *slogAdapter) enabled(level hclog.Level) bool {
	return a.l.Enabled(context.Background(), toSlogLevel(level))
}
func (a *slogAdapter) IsTrace() bool        { return a.enabled(hclog.Trace) }
func (a *slogAdapter) IsDebug() bool        { return a.enabled(hclog.Debug) }
func (a *slogAdapter) IsInfo() bool         { return a.enabled(hclog.Info) }
func (a *slogAdapter) IsWarn() bool         { return a.enabled(hclog.Warn) }
func (a *slogAdapter) IsError() bool        { return a.enabled(hclog.Error) }
func (a *slogAdapter) ImpliedArgs() []any   { return a.args }
func (a *slogAdapter) Name() string         { return a.name }
func (a *slogAdapter) SetLevel(hclog.Level) {}
func (a *slogAdapter) GetLevel() hclog.Level {
	for _, lv := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.enabled(lv) {
			return lv
		}
	}
	return hclog.Off
}
func (a *slogAdapter) With(args ...any) hclog.Logger {
	return &slogAdapter{l: a.l.With(args...), name: a.name, args: append(append([]any(nil), a.args...), args...)}
}
func (a *slogAdapter) Named(name string) hclog.Logger {
	n := name
	if a.name != "" {
		n = a.name + "." + name
	}
	return &slogAdapter{l: a.l.With("subcomponent", name), name: n, args: a.args}
}
func (a *slogAdapter) ResetNamed(name string) hclog.Logger {
	return &slogAdapter{l: a.l.With("subcomponent", name), name: name, args: a.args}
}
func (a *slogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}
func (a *slogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return adapterWriter{a}
}

// adapterWriter turns standard-library log lines ("[WARN] raft: ...") into
// slog records.
type adapterWriter struct{ a *slogAdapter }

func (w adapterWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := hclog.Info
	for prefix, lv := range map[string]hclog.Level{"[TRACE]": hclog.Trace, "[DEBUG]": hclog.Debug, "[INFO]": hclog.Info, "[WARN]": hclog.Warn, "[ERR]": hclog.Error, "[ERROR]": hclog.Error} {
		if strings.HasPrefix(msg, prefix) {
			level = lv
			msg = strings.TrimSpace(strings.TrimPrefix(msg, prefix))
			break
		}
	}
	w.a.Log(level, msg)
	return len(p), nil
}
