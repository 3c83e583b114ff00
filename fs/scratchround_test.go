package fs_test

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
)

// trashKeys lists the keys in the trash.
func (w *world) trashKeys() []string {
	w.t.Helper()
	tl, err := w.cat.TrashList(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, e := range tl {
		out = append(out, e.Key)
	}
	return out
}

// mv dir dir~; mv dir~ dir of a folder of keys keeps each key's history,
// as mv f f~; mv f~ f does for one file: the keys were copied into the
// scratch folder and unlinked (mv's EXDEV fallback), then written anew as
// new histories with their versions in the trash.
func TestFolderRoundTripThroughScratchKeepsHistory(t *testing.T) {
	w := newWorld(t)
	keys := []string{"dir/a.txt", "dir/sub/b.txt"}
	for _, k := range keys {
		w.save(k, []byte("original "+k))
	}
	w.mountRW()
	w.sh(`mv dir dir~ && test ! -e dir && test "$(cat dir~/sub/b.txt)" = "original dir/sub/b.txt" && mv dir~ dir && test ! -e dir~`)
	for _, k := range keys {
		if got := string(w.read(k)); got != "original "+k {
			t.Fatalf("%s = %q", k, got)
		}
		if vs := w.versions(k); len(vs) != 1 || vs[0].Version != 1 {
			t.Fatalf("versions of %s after the round trip: %+v", k, vs)
		}
	}
	if tk := w.trashKeys(); len(tk) != 0 {
		t.Fatalf("the trash after the round trip: %v", tk)
	}
}

// tar -x over keys whose names match a scratch pattern (unlink, then
// create) makes their next version, as over a plain key (the removed one
// stays in the trash): the new files were scratch, with no version.
func TestExtractOverScratchLikeKeysMakesVersions(t *testing.T) {
	w := newWorld(t)
	keys := []string{"d/plain", "d/k~", "d/.#x"}
	for _, k := range keys {
		w.save(k, []byte("original\n"))
	}
	w.mountRW()
	t.Setenv("T", t.TempDir())
	w.sh(`mkdir -p "$T/src/d" && for k in plain 'k~' '.#x'; do printf 'extracted\n' > "$T/src/d/$k"; done &&
		tar -C "$T/src" -cf "$T/a.tar" d && tar -xf "$T/a.tar"`)
	for _, k := range keys {
		if got := string(w.read(k)); got != "extracted\n" {
			t.Fatalf("%s = %q", k, got)
		}
		if vs := w.eventually(k, 1); len(vs) != 1 || vs[0].Version != 2 {
			t.Fatalf("versions of %s after tar -x: %+v", k, vs)
		}
		all, err := w.cat.Versions(context.Background(), k, true)
		if err != nil || len(all) != 2 || !all[0].Trashed || all[1].Trashed {
			t.Fatalf("versions of %s with the trash after tar -x: %+v %v", k, all, err)
		}
	}
}

// rsync -a of a file named x~ into the mount leaves nothing in the trash:
// its temporary .x~.XXXXXX was.
func TestRsyncOfScratchNameLeavesNoTrace(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	t.Setenv("T", t.TempDir())
	w.sh(`mkdir -p "$T/rs" && printf 'one\n' > "$T/rs/x~" && printf 'two\n' > "$T/rs/y" && rsync -a "$T/rs/" r/`)
	if got := string(w.read("r/x~")); got != "one\n" {
		t.Fatalf("r/x~ = %q", got)
	}
	if tk := w.trashKeys(); len(tk) != 0 {
		t.Fatalf("the trash after rsync: %v", tk)
	}
}

// mv a b of a file written in the mount onto a b of the same bytes leaves
// no a in the trash, as onto a b of other bytes (DESIGN §3: the source
// leaves the namespace; a temporary name leaves nothing behind).
func TestRenameOntoIdenticalKeyLeavesNoTrace(t *testing.T) {
	w := newWorld(t)
	w.save("m/b", []byte("same\n"))
	w.save("m/d", []byte("different\n"))
	w.mountRW()
	w.sh(`printf 'same\n' > m/a && printf 'other\n' > m/c && mv m/a m/b && mv m/c m/d`)
	if vs := w.versions("m/b"); len(vs) != 1 {
		t.Fatalf("versions of m/b after a rename of the same bytes onto it: %+v", vs)
	}
	if vs := w.versions("m/d"); len(vs) != 2 {
		t.Fatalf("versions of m/d: %+v", vs)
	}
	if tk := w.trashKeys(); len(tk) != 0 {
		t.Fatalf("the trash after the renames: %v", tk)
	}
}

// A folder a writer holds a key of is not renamed to a scratch name
// (EBUSY), as such a key is not: its writer's bytes would be lost.
func TestRenameFolderWithHeldKeyToScratchRefused(t *testing.T) {
	w := newWorld(t)
	w.save("dir/a.txt", []byte("original"))
	w.save("dir/sub/b.txt", []byte("original"))
	w.mountRW()
	f, err := os.OpenFile(w.p("dir/sub/new.txt"), os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("written")
	if err := os.Rename(w.p("dir"), w.p("dir~")); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("rename of a folder with a held key to a scratch name: %v", err)
	}
	if got := string(w.read("dir/a.txt")); got != "original" {
		t.Fatalf("dir/a.txt = %q", got)
	}
}
