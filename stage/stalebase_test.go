package stage_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/stage"
)

// An in-place edit whose close finds another writer's version as the
// latest warns, naming the versions; an edit on its own base, and an
// O_TRUNC writer, warn of nothing.
func TestStaleBaseWarns(t *testing.T) {
	e := newEnv(t)
	var logged bytes.Buffer
	s, err := stage.New(e.cat, e.store, stage.Options{Dir: e.dir, User: "t",
		Logger: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	edit := func(trunc bool, between func()) {
		t.Helper()
		base, err := e.cat.ByKey(ctx, "k.txt", 0)
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.Open(ctx, "k.txt", base, trunc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(ctx, []byte("E"), 0); err != nil {
			t.Fatal(err)
		}
		if between != nil {
			between()
		}
		if err := f.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := f.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	commitBody(t, s, "k.txt", "one\n")                          // v1
	edit(false, nil)                                            // v2 on v1
	edit(true, func() { commitBody(t, s, "k.txt", "other\n") }) // v3, then the O_TRUNC writer's v4
	if logged.Len() != 0 {
		t.Fatalf("warned: %s", logged.String())
	}
	edit(false, func() { commitBody(t, s, "k.txt", "other\n") }) // v5, then v6 on v4
	// v6 is v4's "E" edited: v5's bytes are only in v5.
	if got := e.content(t, "k.txt"); got != "E" {
		t.Fatalf("latest %q", got)
	}
	want := "k.txt: this close (v6) was based on v4 but replaced v5"
	if !strings.Contains(logged.String(), want) || !strings.Contains(logged.String(), "k.txt@v5") {
		t.Fatalf("log lacks %q: %s", want, logged.String())
	}
}

// A clean File follows a version another workstation (another Stage on
// the catalog) committed, once told (CommittedElsewhere): its edit builds
// on it.
func TestCommittedElsewhereFollows(t *testing.T) {
	e := newEnv(t)
	s := e.stage(t)
	other, err := stage.New(e.cat, e.store, stage.Options{Dir: filepath.Join(filepath.Dir(e.dir), "other"), User: "t"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v1 := commitBody(t, s, "k.txt", "one\n")
	f, err := s.Open(ctx, "k.txt", v1, false)
	if err != nil {
		t.Fatal(err)
	}
	commitBody(t, other, "k.txt", "two\n") // v2, elsewhere
	s.CommittedElsewhere(ctx, "k.txt")
	if _, err := f.WriteAt(ctx, []byte("T"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.content(t, "k.txt"); got != "Two\n" {
		t.Fatalf("latest %q, want the edit on v2", got)
	}
}
