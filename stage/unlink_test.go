package stage_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/ref"
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

// An unlink survives a remount within the window: the Stage keeps the
// window's unlinks in its folder at Sync (as at unmount), and the next
// Stage of that folder restores them with the key's commit (rm out;
// lamina umount; lamina mount; a rerun writes out again). Past the window
// nothing comes back, as without the remount.
func TestUnlinkSurvivesRemount(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	put(t, s, "w2.txt", "one")
	put(t, s, "w2.txt", "two")
	if err := s.Unlink(ctx, "w2.txt"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	s = e.stage(t) // the next mount
	if _, err := s.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	put(t, s, "w2.txt", "three")
	if live, tr := e.liveAndTrashed(t, "w2.txt"); !slices.Equal(live, []int{1, 2, 3}) || len(tr) != 0 {
		t.Fatalf("w2.txt unlinked, remounted and written again: live %v, trashed %v; want 1 2 3", live, tr)
	}
	// Used: a later unlink and remount restores only its own entry.
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	s = e.stage(t)
	put(t, s, "w2.txt", "four")
	if live, tr := e.liveAndTrashed(t, "w2.txt"); !slices.Equal(live, []int{1, 2, 3, 4}) || len(tr) != 0 {
		t.Fatalf("w2.txt written after a second remount: live %v, trashed %v; want 1 2 3 4", live, tr)
	}
}

func TestUnlinkPastWindowAcrossRemountStaysTrashed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	const window = 200 * time.Millisecond
	o := stage.Options{Dir: e.dir, User: "t", MoveAwayWindow: window}
	s, err := stage.New(e.cat, e.store, o)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "k", "one")
	if err := s.Unlink(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * window)
	if s, err = stage.New(e.cat, e.store, o); err != nil {
		t.Fatal(err)
	}
	put(t, s, "k", "two")
	if live, tr := e.liveAndTrashed(t, "k"); !slices.Equal(live, []int{2}) || !slices.Equal(tr, []int{1}) {
		t.Fatalf("k written again past the window after a remount: live %v, trashed %v; want 2, 1", live, tr)
	}
}

// A file renamed to a backup's name, then the daemon remounted, then the
// file written again within the window: the history comes back to it
// (takeBack), as without the remount.
func TestRenameAwaySurvivesRemount(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	put(t, s, "f", "one")
	put(t, s, "f", "two")
	v, err := e.cat.ByKey(ctx, "f", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RenameFile(ctx, "f", "f.bak", v.UID[:ref.StemLen]); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	s = e.stage(t)
	put(t, s, "f", "three")
	if live, tr := e.liveAndTrashed(t, "f"); !slices.Equal(live, []int{1, 2, 3}) || len(tr) != 0 {
		t.Fatalf("f renamed to f.bak, remounted, written again: live %v, trashed %v; want 1 2 3", live, tr)
	}
	if live, _ := e.liveAndTrashed(t, "f.bak"); !slices.Equal(live, []int{1}) {
		t.Fatalf("f.bak: live %v; want 1", live)
	}
}
