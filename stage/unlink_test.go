package stage_test

import (
	"context"
	"slices"
	"testing"

	"github.com/lamina-bio/lamina/stage"
)

// put writes data as the next version of key through s, as a create,
// write and close in the mount do.
func put(t *testing.T, s *stage.Stage, key, data string) {
	t.Helper()
	ctx := context.Background()
	f, err := s.Create(ctx, key, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, []byte(data), 0)
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.Release(ctx)
}

func (e *env) liveAndTrashed(t *testing.T, key string) (live, trashed []int) {
	t.Helper()
	vs, err := e.cat.Versions(context.Background(), key, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Trashed {
			trashed = append(trashed, v.Version)
		} else {
			live = append(live, v.Version)
		}
	}
	return live, trashed
}

// A commit of a key unlinked a moment ago brings back what the unlink
// trashed (an editor's save, mv from another file system, tar -x), and the
// same bytes make no version; not once the key was written again by other
// means (another mount, lamina save): that write started after the
// trashed history, and this commit follows it.
func TestUnlinkedKeyComesBackWithItsCommit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	put(t, s, "k", "one")
	put(t, s, "k", "two")
	if err := s.Unlink(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	put(t, s, "k", "two")
	if live, tr := e.liveAndTrashed(t, "k"); !slices.Equal(live, []int{1, 2}) || len(tr) != 0 {
		t.Fatalf("k after unlink and the same bytes: live %v, trashed %v", live, tr)
	}

	other, err := stage.New(e.cat, e.store, stage.Options{Dir: t.TempDir(), User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "j", "one")
	if err := s.Unlink(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	put(t, other, "j", "two")
	put(t, s, "j", "three")
	if live, tr := e.liveAndTrashed(t, "j"); !slices.Equal(live, []int{2, 3}) || !slices.Equal(tr, []int{1}) {
		t.Fatalf("j written again elsewhere after its unlink: live %v, trashed %v; want 2 3, 1", live, tr)
	}
}
