package fs_test

import (
	"context"
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

// tar -x over keys whose names match a scratch pattern (unlink, then
// create) makes their next version, as over a plain key (the removed one
// comes back from the trash: Stage.Unlink): the new files were scratch,
// with no version.
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
		w.wantVersions(k, []int{1, 2}, nil)
	}
	if tk := w.trashKeys(); len(tk) != 0 {
		t.Fatalf("the trash after tar -x: %v", tk)
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

// vim's backup rename (notes to notes~) right after a saved key notes~ was
// removed: notes~ is scratch again for the rename, so the save is notes'
// next version. The name kept for tar -x (KeepName) made the rename one
// onto a key, and notes' v1 went to the trash under notes~ (audit 26).
func TestEditorSaveAfterItsBackupKeyRemoved(t *testing.T) {
	w := newWorld(t)
	w.save("vb/notes", []byte("first\n"))
	w.save("vb/notes~", []byte("backup\n"))
	w.mountRW()
	w.sh(`rm vb/notes~ && mv vb/notes vb/notes~ && printf 'edited\n' > vb/notes && rm vb/notes~`)
	vs := w.eventually("vb/notes", 2)
	if len(vs) != 2 || vs[0].Version != 1 || vs[1].Version != 2 {
		t.Fatalf("versions of vb/notes: %+v; want v1 and the edit as v2", vs)
	}
	if got := string(w.read("vb/notes@v1")); got != "first\n" {
		t.Fatalf("vb/notes@v1 = %q", got)
	}
}

// An editor's backup made by copying (vim with backupcopy=yes: notes~
// created, written, and removed after the save) right after a saved key
// notes~ was removed by rm is scratch: the name kept for tar -x
// (KeepName) is the name of the process that unlinked the key only.
// It was a key: the backup became notes~'s next version, and the editor's
// removal of it put a version of its bytes in the trash with lineage.
func TestBackupAfterScratchLikeKeyRemovedIsScratch(t *testing.T) {
	w := newWorld(t)
	w.save("bk/notes", []byte("first\n"))
	w.save("bk/notes~", []byte("backup\n"))
	w.mountRW()
	w.sh(`rm bk/notes~ && cp bk/notes bk/notes~ && ls -a bk | grep -qxF 'notes~' &&
		printf 'edited\n' > bk/notes && rm bk/notes~`)
	all, err := w.cat.Versions(context.Background(), "bk/notes~", true)
	if err != nil || len(all) != 1 || !all[0].Trashed {
		t.Fatalf("versions of bk/notes~ with the trash: %+v %v; want the removed v1 only", all, err)
	}
	if vs := w.eventually("bk/notes", 2); len(vs) != 2 {
		t.Fatalf("versions of bk/notes: %+v", vs)
	}
}
