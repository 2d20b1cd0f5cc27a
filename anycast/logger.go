package anycast

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapLogger hands GoBGP's logs to the host's zap logger. The speaker
// outlives configurations while each configuration brings its own logger,
// so the target is swapped atomically. Peer passwords are redacted from
// every message and field, and the last warning or error of each peer is
// kept for the status view.
type zapLogger struct {
	target  atomic.Pointer[zap.Logger]
	mu      sync.Mutex
	secrets []string
	lastErr map[string]string // peer address -> last warning or error
}

func newZapLogger(l *zap.Logger) *zapLogger {
	z := &zapLogger{lastErr: map[string]string{}}
	if l == nil {
		l = zap.NewNop()
	}
	z.target.Store(l)
	return z
}

func (z *zapLogger) setSecrets(s []string) {
	z.mu.Lock()
	z.secrets = s
	z.mu.Unlock()
}

func (z *zapLogger) redact(s string) string {
	for _, sec := range z.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

func (z *zapLogger) lastError(peer string) string {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.lastErr[peer]
}

func (z *zapLogger) forget(peer string) {
	z.mu.Lock()
	delete(z.lastErr, peer)
	z.mu.Unlock()
}

func (z *zapLogger) log(level zapcore.Level, msg string, fields gobgplog.Fields) {
	l := z.target.Load()
	ce := l.Check(level, "")
	peerErr := level >= zapcore.WarnLevel
	if ce == nil && !peerErr {
		return
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	msg = z.redact(msg)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	zf := make([]zap.Field, 0, len(keys))
	var parts []string
	for _, k := range keys {
		v := z.redact(fmt.Sprint(fields[k]))
		zf = append(zf, zap.String(strings.ToLower(k), v))
		if k != "Topic" && k != "Key" {
			parts = append(parts, k+"="+v)
		}
	}
	if peerErr {
		if key, ok := fields["Key"].(string); ok {
			if _, known := z.lastErr[key]; known || len(z.lastErr) < 1024 {
				z.lastErr[key] = strings.TrimSpace(msg + " " + strings.Join(parts, " "))
			}
		}
	}
	if ce != nil {
		ce.Message = msg
		ce.Write(zf...)
	}
}

func (z *zapLogger) Panic(msg string, fields gobgplog.Fields) {
	z.log(zapcore.ErrorLevel, msg, fields)
	panic(msg)
}

// Fatal is logged as an error: a BGP speaker's trouble must not end the
// host process that also serves traffic.
func (z *zapLogger) Fatal(msg string, fields gobgplog.Fields) { z.log(zapcore.ErrorLevel, msg, fields) }
func (z *zapLogger) Error(msg string, fields gobgplog.Fields) { z.log(zapcore.ErrorLevel, msg, fields) }
func (z *zapLogger) Warn(msg string, fields gobgplog.Fields)  { z.log(zapcore.WarnLevel, msg, fields) }
func (z *zapLogger) Info(msg string, fields gobgplog.Fields)  { z.log(zapcore.InfoLevel, msg, fields) }
func (z *zapLogger) Debug(msg string, fields gobgplog.Fields) { z.log(zapcore.DebugLevel, msg, fields) }

// SetLevel is ignored: the host's logger decides.
func (z *zapLogger) SetLevel(gobgplog.LogLevel) {}

// GetLevel tells GoBGP whether debug logs would be written, so it skips
// building the ones that would not.
func (z *zapLogger) GetLevel() gobgplog.LogLevel {
	if z.target.Load().Core().Enabled(zapcore.DebugLevel) {
		return gobgplog.DebugLevel
	}
	return gobgplog.InfoLevel
}

var _ gobgplog.Logger = (*zapLogger)(nil)
