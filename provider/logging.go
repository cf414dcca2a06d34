package provider

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/hashicorp/terraform-plugin-log/tflog"
)

// tflogHandler is a slog.Handler that writes the backend's records (retries,
// zone discovery) to the provider's tflog logger, so that TF_LOG shows them
// with the provider's other lines.
//
// Backends log without a context, so the handler carries the context of
// Configure: its logger and secret masks stay valid for the life of the
// provider process, after the Configure call itself has returned.
type tflogHandler struct {
	ctx    context.Context
	attrs  []slog.Attr
	prefix string // group names joined with dots, ending in a dot
}

var _ slog.Handler = (*tflogHandler)(nil)

// newBackendLogger returns a logger for backends.Config.Logger.
func newBackendLogger(ctx context.Context) *slog.Logger {
	return slog.New(&tflogHandler{ctx: ctx})
}

// Enabled leaves level filtering to tflog, which applies TF_LOG_PROVIDER.
func (h *tflogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *tflogHandler) Handle(_ context.Context, r slog.Record) error {
	fields := make(map[string]any, len(h.attrs)+r.NumAttrs())
	for _, a := range h.attrs {
		addField(fields, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		addField(fields, h.prefix, a)
		return true
	})
	switch {
	case r.Level < slog.LevelInfo:
		tflog.Debug(h.ctx, r.Message, fields)
	case r.Level < slog.LevelWarn:
		tflog.Info(h.ctx, r.Message, fields)
	case r.Level < slog.LevelError:
		tflog.Warn(h.ctx, r.Message, fields)
	default:
		tflog.Error(h.ctx, r.Message, fields)
	}
	return nil
}

func (h *tflogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = make([]slog.Attr, 0, len(h.attrs)+len(attrs))
	c.attrs = append(c.attrs, h.attrs...)
	for _, a := range attrs {
		c.attrs = append(c.attrs, slog.Attr{Key: h.prefix + a.Key, Value: a.Value})
	}
	return &c
}

func (h *tflogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}

// addField flattens a into fields, naming group members "group.key".
func addField(fields map[string]any, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			addField(fields, p, g)
		}
		return
	}
	if a.Key == "" {
		return
	}
	switch v.Kind() {
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			fields[prefix+a.Key] = err.Error()
			return
		}
		fields[prefix+a.Key] = v.String()
	default:
		fields[prefix+a.Key] = v.Any()
	}
}

// loggerLevelVars are the environment variables that set the levels of the
// loggers in a provider process: terraform-plugin-go's SDK and protocol
// loggers, terraform-plugin-framework's, and this provider's own
// (TF_LOG_PROVIDER_ and the provider's type name). A logger whose variable
// is unset logs at TRACE.
var loggerLevelVars = []string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK", "TF_LOG_PROVIDER_PSA"}

// SilenceDiscardedLogs turns the provider process's loggers off when the
// Terraform (or OpenTofu) that started it discards what they write: it
// shows a provider's log lines only when TF_LOG_PROVIDER, or else TF_LOG,
// sets a level other than off. Every logger of the plugin SDK and the
// framework logs at TRACE unless told otherwise, so without this the
// provider encodes a dozen JSON lines per call for Terraform to decode and
// drop: a third of the provider's CPU time in a plan of 1,200 resources. A
// level set explicitly for a logger is kept. getenv and setenv are
// os.Getenv and os.Setenv; the provider's debug mode (-debug), whose logs
// are read on its own stderr, must not call it.
func SilenceDiscardedLogs(getenv func(string) string, setenv func(string, string) error) error {
	level := getenv("TF_LOG_PROVIDER")
	if level == "" {
		level = getenv("TF_LOG")
	}
	if level != "" && !strings.EqualFold(level, "off") {
		return nil
	}
	for _, name := range loggerLevelVars {
		if getenv(name) != "" {
			continue
		}
		if err := setenv(name, "off"); err != nil {
			return fmt.Errorf("setting %s: %w", name, err)
		}
	}
	return nil
}
