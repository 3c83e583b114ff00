package stage_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/stage"
)

// A File created or truncated to empty and closed unwritten commits no
// empty version over a version of its key that another writer committed
// after the emptying, on this Stage or another (audit c4: `flock -x out sh
// -c 'echo hello > out'` left out empty); with no such version it commits
// as before (touch, `: > f`), and a truncation after the other's version
// still empties the file.
func TestEmptyCloseYieldsToLaterVersion(t *testing.T) {
	e := newEnv(t)
	s := e.stage(t)
	other, err := stage.New(e.cat, e.store, stage.Options{Dir: filepath.Join(filepath.Dir(e.dir), "other"), User: "t"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	closeFile := func(f *stage.File) {
		t.Helper()
		if err := f.FlushLast(ctx); err != nil {
			t.Fatal(err)
		}
		if err := f.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check := func(key, want string, n int) {
		t.Helper()
		vs, err := e.cat.Versions(ctx, key, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.content(t, key); got != want || len(vs) != n {
			t.Fatalf("%s: latest %q of %d versions, want %q of %d", key, got, len(vs), want, n)
		}
	}
	for _, by := range []struct {
		name string
		s    *stage.Stage
	}{{"here", s}, {"elsewhere", other}} {
		// A new key, created (O_CREAT without O_TRUNC) and held.
		k := by.name + "-new.txt"
		f, err := s.OpenShared(ctx, k, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		commitBody(t, by.s, k, "hello\n")
		closeFile(f)
		check(k, "hello\n", 1)

		// O_TRUNC over v1, then another writer's v2.
		v1, _ := e.cat.ByKey(ctx, k, 0)
		f, err = s.Open(ctx, k, v1, true)
		if err != nil {
			t.Fatal(err)
		}
		commitBody(t, by.s, k, "two\n")
		closeFile(f)
		check(k, "two\n", 2)

		// An mtime set through it goes to the later version.
		k = by.name + "-touched.txt"
		f, err = s.Create(ctx, k, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		commitBody(t, by.s, k, "hello\n")
		mt := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
		f.SetMtime(mt)
		closeFile(f)
		check(k, "hello\n", 1)
		if v, _ := e.cat.ByKey(ctx, k, 0); !v.Mtime.Equal(mt) {
			t.Fatalf("%s: mtime %v, want %v", k, v.Mtime, mt)
		}
	}

	// Nobody else wrote: touch of a new key, `: > f` of an existing one.
	f, err := s.Create(ctx, "alone.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	closeFile(f)
	check("alone.txt", "", 1)
	v1 := commitBody(t, s, "alone.txt", "x\n")
	f, err = s.Open(ctx, "alone.txt", v1, true)
	if err != nil {
		t.Fatal(err)
	}
	closeFile(f)
	check("alone.txt", "", 3)

	// Truncated to zero after another File of this Stage committed: empty.
	v1 = commitBody(t, s, "late.txt", "one\n")
	f, err = s.Open(ctx, "late.txt", v1, false)
	if err != nil {
		t.Fatal(err)
	}
	commitBody(t, s, "late.txt", "two\n")
	if err := f.Truncate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	closeFile(f)
	check("late.txt", "", 3)
}
