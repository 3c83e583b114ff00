package stage_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// A file written through a descriptor the Stage does not see, adopted
// under a key while open: what is written after Adopt is committed too,
// the writers of the replaced file commit nothing, and the file leaves its
// folder.
func TestAdoptSeesOtherDescriptors(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	held, err := s.Create(ctx, "out", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	held.WriteAt(ctx, []byte("replaced"), 0)
	p := filepath.Join(filepath.Dir(e.dir), "out~")
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("AAAA"))
	r, err := os.Open(p) // a reader of the scratch file
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := s.Adopt(ctx, "out", p, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("the adopted file is still at %s: %v", p, err)
	}
	w.Write([]byte("BBBB"))
	if size, _, mode := f.Attr(); size != 8 || mode != 0o600 {
		t.Fatalf("Attr after a write through the other descriptor: size %d mode %o", size, mode)
	}
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("C"))
	w.Close()
	if err := f.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.content(t, "out"); got != "AAAABBBBC" {
		t.Fatalf("out = %q", got)
	}
	if vs, _ := e.cat.Versions(ctx, "out", false); len(vs) != 2 {
		t.Fatalf("%d versions, want 2 (the flush, the release)", len(vs))
	}
	// The file is not emptied for reuse under its reader.
	if b, err := io.ReadAll(r); err != nil || string(b) != "AAAABBBBC" {
		t.Fatalf("the scratch file's reader read %q, %v", b, err)
	}
}
