package fs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// An append to a big file through the mount (echo x >> big, an O_RDWR
// pwrite near the end) stages the version's last chunk only, not the
// whole version; reads while it is open, and the versions its closes
// make, hold the file's bytes. A pwrite in the middle then needs, and
// gets, the whole copy.
func TestAppendToBigFileStagesItsEndOnly(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	staging := filepath.Join(w.tmp, "cache", "staging")
	model := random(6<<20 + 4321)
	w.save("big.bin", model)

	w.sh(`echo x >> big.bin`)
	model = append(model, "x\n"...)
	if got := w.read("big.bin"); !bytes.Equal(got, model) {
		t.Fatalf("after echo x >> big.bin: %d bytes, want %d (the version and the line)", len(got), len(model))
	}

	f, err := os.OpenFile(w.p("big.bin"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("END!"), int64(len(model)-3)); err != nil {
		t.Fatal(err)
	}
	model = append(model[:len(model)-3], "END!"...)
	// While the writer holds it: its staging file holds the last chunk.
	var staged []string
	ents, _ := os.ReadDir(staging)
	for _, e := range ents {
		if n := e.Name(); n != "journal" && !strings.Contains(n, ".") {
			var st syscall.Stat_t
			if syscall.Stat(filepath.Join(staging, n), &st) == nil && st.Size == int64(len(model)) {
				staged = append(staged, n)
				if st.Blocks*512 > 1<<20 {
					t.Errorf("a pwrite near the end of a 6 MiB file staged %d bytes of disk; want its last chunk only", st.Blocks*512)
				}
			}
		}
	}
	if len(staged) != 1 {
		t.Fatalf("staging files of the open file: %v", staged)
	}
	head := make([]byte, 1<<20)
	if _, err := f.ReadAt(head, 4096); err != nil || !bytes.Equal(head, model[4096:4096+len(head)]) {
		t.Fatalf("a read of the head through the writer's descriptor differs: %v", err)
	}
	// A pwrite in the middle: the rest of the copy.
	if _, err := f.WriteAt([]byte("MIDDLE"), 3<<20); err != nil {
		t.Fatal(err)
	}
	copy(model[3<<20:], "MIDDLE")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := w.read("big.bin"); !bytes.Equal(got, model) {
		t.Fatalf("after pwrites near the end and in the middle: the file differs (%d bytes, want %d)", len(got), len(model))
	}
	w.sh(`printf 'one more\n' >> big.bin`)
	model = append(model, "one more\n"...)
	if got := w.read("big.bin"); !bytes.Equal(got, model) {
		t.Fatal("after a second append the file differs")
	}
}
