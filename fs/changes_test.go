package fs_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	lfs "github.com/lamina-bio/lamina/fs"
)

// A chmod or touch of a folder made elsewhere (another workstation's
// mount, whose notification names the folder's key) shows at once: the
// folder's own listing, which holds its mode and mtime, is dropped with
// the kernel's attributes. Before, only its parent's listing was, and the
// folder kept its old mode and time until a file in it changed.
func TestFolderAttrsChangedElsewhere(t *testing.T) {
	for _, tc := range []struct {
		name   string
		listed bool // the folder's own listing was read (ls), not only its parent's
	}{{"listed", true}, {"statted", false}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.save("cm/e/f", []byte("x"))
			w.mount(lfs.MountOptions{})
			dir := filepath.Join(w.dir, "cm/e")
			if tc.listed {
				w.ls("cm/e")
			}
			st, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o755 {
				t.Fatalf("mode before: %v", st.Mode())
			}
			mode, mtime := uint32(0o700), time.Date(2021, 5, 5, 0, 0, 0, 0, time.UTC)
			if _, err := w.cat.SetAttrs(context.Background(), "cm/e", catalog.Attrs{Mode: &mode, Mtime: &mtime}); err != nil {
				t.Fatal(err)
			}
			w.mnt.Changed([]string{"cm/e"}) // what the other workstation's notification carries
			st, err = os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o700 || !st.ModTime().Equal(mtime) {
				t.Errorf("after a chmod and touch elsewhere: %v %v, want -rwx------ %v", st.Mode(), st.ModTime(), mtime)
			}
		})
	}
}
