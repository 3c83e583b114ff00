package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// cliLog is the logger of an instance a command opened: its lines (an
// ontology index rebuilt, the registry read from this machine's copy
// while the storage is away) read as the CLI's other messages,
// "lamina: warning: …", not as log lines with a timestamp and a level.
func cliLog(w io.Writer) *slog.Logger { return slog.New(cliHandler{w: w}) }

type cliHandler struct {
	w     io.Writer
	attrs []slog.Attr
}

func (h cliHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h cliHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("lamina: ")
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	}
	b.WriteString(r.Message)
	var kv []string
	add := func(a slog.Attr) bool {
		kv = append(kv, fmt.Sprintf("%s: %s", a.Key, a.Value.Resolve()))
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if len(kv) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(kv, "; "))
	}
	b.WriteString("\n")
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h cliHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return cliHandler{w: h.w, attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], as...)}
}

func (h cliHandler) WithGroup(string) slog.Handler { return h }
