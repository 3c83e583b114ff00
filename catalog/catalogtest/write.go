package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

// runWrite checks catalog.Writer: renames, attributes, folders and links.
func runWrite(t *testing.T, open func(t *testing.T) catalog.Catalog) {
	ctx := context.Background()
	save := func(t *testing.T, c catalog.Catalog, nvs ...catalog.NewVersion) []catalog.Saved {
		t.Helper()
		s, err := c.Save(ctx, nvs)
		if err != nil {
			t.Fatalf("Save: %v", err)
		}
		return s
	}
	ls := func(t *testing.T, c catalog.Catalog, prefix string) (files, dirs, links []string) {
		t.Helper()
		d, err := c.Children(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		files, dirs, links = []string{}, []string{}, []string{}
		for _, v := range d.Files {
			files = append(files, v.Key)
		}
		dirs = append(dirs, d.Subdirs...)
		for _, l := range d.Links {
			links = append(links, l.Key+"->"+l.Target)
		}
		return
	}
	t.Run("RenameToFreeKeyMovesVersions", func(t *testing.T) {
		c := open(t)
		save(t, c, NV("a/x", "1"))
		s2 := save(t, c, NV("a/x", "2"))[0]
		v, err := c.Rename(ctx, "a/x", "b/y")
		if err != nil || v.Key != "b/y" || v.UID != s2.Version.UID || v.Version != 2 {
			t.Fatalf("Rename = %+v, %v", v, err)
		}
		vs, err := c.Versions(ctx, "b/y", false)
		if err != nil || len(vs) != 2 || vs[0].Key != "b/y" {
			t.Fatalf("Versions after rename = %v, %v", vs, err)
		}
		if _, err := c.ByKey(ctx, "a/x", 0); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("old key: %v", err)
		}
		if _, err := c.Rename(ctx, "a/x", "c"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("rename of a gone key: %v", err)
		}
	})
	t.Run("RenameOntoKeyMakesVersion", func(t *testing.T) {
		c := open(t)
		save(t, c, NV("t", "old"))
		src := save(t, c, NV("tmp.123", "new"))[0].Version
		v, err := c.Rename(ctx, "tmp.123", "t")
		if err != nil || v.Version != 2 || v.Digest != src.Digest || v.Manifest != src.Manifest || !v.Mtime.Equal(src.Mtime) {
			t.Fatalf("Rename onto = %+v, %v", v, err)
		}
		if _, err := c.ByKey(ctx, "tmp.123", 0); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("source still there: %v", err)
		}
		tl, _ := c.TrashList(ctx)
		if len(tl) != 1 || tl[0].Key != "tmp.123" {
			t.Fatalf("source not in the trash: %v", tl)
		}
		// Onto a key of another suffix: the new version is the target's kind
		// of file.
		txt := NV("notes.txt", "a,b\n")
		txt.Suffix = ".txt"
		save(t, c, txt)
		csv := NV("table.csv", "x,y\n")
		csv.Suffix, csv.OType = ".csv", "DataFrame"
		save(t, c, csv)
		if v, err := c.Rename(ctx, "notes.txt", "table.csv"); err != nil || v.Suffix != ".csv" || v.OType != "DataFrame" {
			t.Fatalf("a .txt renamed onto a .csv = suffix %q, otype %q, %v", v.Suffix, v.OType, err)
		}
		// Onto a trashed key: its numbers continue.
		if _, err := c.Trash(ctx, "t"); err != nil {
			t.Fatal(err)
		}
		save(t, c, NV("u", "third"))
		if v, err := c.Rename(ctx, "u", "t"); err != nil || v.Version != 3 {
			t.Fatalf("onto trashed: %+v %v", v, err)
		}
		// Onto a folder: refused.
		save(t, c, NV("dir/f", "f"))
		save(t, c, NV("w", "w"))
		if _, err := c.Rename(ctx, "w", "dir"); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("onto a folder: %v", err)
		}
	})
	t.Run("RenameToFreeKeyTakesItsSuffix", func(t *testing.T) {
		// printf … > t.csv.tmp; mv t.csv.tmp t.csv: the moved versions are
		// .csv files, as a rename onto an existing key makes them.
		c := open(t)
		for _, content := range []string{"a,b\n", "a,b\n1,2\n"} {
			nv := NV("sx/t.csv.tmp", content)
			nv.Suffix = ".tmp"
			save(t, c, nv)
		}
		v, err := c.Rename(ctx, "sx/t.csv.tmp", "sx/t.csv")
		if err != nil || v.Suffix != ".csv" || v.OType != "DataFrame" {
			t.Fatalf("a .tmp renamed to a free .csv key = suffix %q, otype %q, %v", v.Suffix, v.OType, err)
		}
		vs, err := c.Versions(ctx, "sx/t.csv", false)
		if err != nil || len(vs) != 2 {
			t.Fatalf("Versions = %v, %v", vs, err)
		}
		for _, v := range vs {
			if v.Suffix != ".csv" || v.OType != "DataFrame" {
				t.Fatalf("v%d: suffix %q, otype %q", v.Version, v.Suffix, v.OType)
			}
		}
		got, err := c.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: "suffix", Op: "=", Values: []string{".csv"}}}})
		if err != nil || len(got) != 1 || got[0].Key != "sx/t.csv" {
			t.Fatalf("Find suffix=.csv = %v, %v", got, err)
		}
		// To a key with no suffix: none, as a save there gives (a key
		// without one has none, whatever the file's name).
		if v, err := c.Rename(ctx, "sx/t.csv", "sx/t"); err != nil || v.Suffix != "" || v.OType != "" {
			t.Fatalf("sx/t.csv renamed to sx/t = suffix %q, otype %q, %v", v.Suffix, v.OType, err)
		}
		// Same suffix: an otype the content gave stays.
		h := NV("a.h5ad", "h")
		h.Suffix, h.OType = ".h5ad", "MuData"
		save(t, c, h)
		if v, err := c.Rename(ctx, "a.h5ad", "b.h5ad"); err != nil || v.Suffix != ".h5ad" || v.OType != "MuData" {
			t.Fatalf("a.h5ad renamed to b.h5ad = suffix %q, otype %q, %v", v.Suffix, v.OType, err)
		}
	})
	t.Run("RenameKeepsContentOType", func(t *testing.T) {
		// The otype the content gave stays unless the new suffix names
		// another type (audit e2): neither rename reads the bytes.
		c := open(t)
		for _, tc := range []struct {
			from, fromSuffix, otype, to, suffix, want string
			folder                                    bool
		}{
			// A folder's otype is its content's (a zarr group's .zattrs):
			// .zarr names none (AnnData or SpatialData), nor does no suffix.
			{"ko/pbmc", "", "AnnData", "ko/pbmc.zarr", ".zarr", "AnnData", true},
			{"ko/q.zarr", ".zarr", "AnnData", "ko/q", "", "AnnData", true},
			{"ko/e.csv", ".csv", "DataFrame", "ko/f.CSV", ".CSV", "DataFrame", false}, // case folded, as save
			{"ko/g.txt", ".txt", "", "ko/g.CSV", ".CSV", "DataFrame", false},
			{"ko/p.h5ad", ".h5ad", "AnnData", "ko/p.csv", ".csv", "", false}, // AnnData bytes are no DataFrame
			{"ko/m.h5ad", ".h5ad", "MuData", "ko/m.H5AD", ".H5AD", "MuData", false},
		} {
			nv := NV(tc.from, tc.from)
			nv.Suffix, nv.OType = tc.fromSuffix, tc.otype
			if tc.folder {
				nv.Kind, nv.NFiles = "folder", 1
			}
			save(t, c, nv)
			v, err := c.Rename(ctx, tc.from, tc.to)
			if err != nil || v.Suffix != tc.suffix || v.OType != tc.want {
				t.Errorf("%s (otype %q) renamed to %s = suffix %q, otype %q, %v; want %q, %q", tc.from, tc.otype, tc.to, v.Suffix, v.OType, err, tc.suffix, tc.want)
			}
			// Onto an existing key, the same.
			from, to := "onto/"+tc.from, "onto/"+tc.to
			nv = NV(from, from)
			nv.Suffix, nv.OType = tc.fromSuffix, tc.otype
			there := NV(to, "there")
			if tc.folder {
				nv.Kind, nv.NFiles = "folder", 1
				there.Kind, there.NFiles = "folder", 1
			}
			save(t, c, nv, there)
			v, err = c.Rename(ctx, from, to)
			if err != nil || v.Suffix != tc.suffix || v.OType != tc.want {
				t.Errorf("%s (otype %q) renamed onto %s = suffix %q, otype %q, %v; want %q, %q", from, tc.otype, to, v.Suffix, v.OType, err, tc.suffix, tc.want)
			}
		}
	})
	t.Run("RenameFolder", func(t *testing.T) {
		c := open(t)
		save(t, c, NV("p/a", "a"), NV("p/q/b", "b"), NV("other", "o"))
		if err := c.MakeFolder(ctx, "p/empty"); err != nil {
			t.Fatal(err)
		}
		if err := c.Symlink(ctx, "p/ln", "a"); err != nil {
			t.Fatal(err)
		}
		if err := c.RenameFolder(ctx, "p", "r/s"); err != nil {
			t.Fatal(err)
		}
		files, dirs, links := ls(t, c, "r/s/")
		if !reflect.DeepEqual(files, []string{"r/s/a"}) || !reflect.DeepEqual(dirs, []string{"empty", "q"}) || !reflect.DeepEqual(links, []string{"r/s/ln->a"}) {
			t.Fatalf("after RenameFolder: %v %v %v", files, dirs, links)
		}
		if _, dirs, _ := ls(t, c, ""); !reflect.DeepEqual(dirs, []string{"r"}) {
			t.Fatalf("top after RenameFolder: %v", dirs)
		}
		if err := c.RenameFolder(ctx, "nope", "x"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("missing folder: %v", err)
		}
		save(t, c, NV("full/x", "x"))
		if err := c.RenameFolder(ctx, "r", "full"); !errors.Is(err, catalog.ErrNotEmpty) {
			t.Fatalf("onto a full folder: %v", err)
		}
		if err := c.RenameFolder(ctx, "r", "other"); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("onto a file: %v", err)
		}
		// Names of more than one byte a character: the folders under the
		// moved one keep their names.
		for _, k := range []string{"données/vide", "données/sous/é"} {
			if err := c.MakeFolder(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.RenameFolder(ctx, "données", "über"); err != nil {
			t.Fatal(err)
		}
		if _, dirs, _ := ls(t, c, "über/"); !reflect.DeepEqual(dirs, []string{"sous", "vide"}) {
			t.Fatalf("folders after RenameFolder of données: %v", dirs)
		}
		if _, dirs, _ := ls(t, c, "über/sous/"); !reflect.DeepEqual(dirs, []string{"é"}) {
			t.Fatalf("folders under über/sous after RenameFolder of données: %v", dirs)
		}
	})
	t.Run("SetAttrs", func(t *testing.T) {
		c := open(t)
		s := save(t, c, NV("m", "1"))[0].Version
		mt := time.Date(2020, 1, 2, 3, 4, 5, 123456789, time.UTC)
		mode := uint32(0o444)
		v, err := c.SetAttrs(ctx, "m", catalog.Attrs{Mtime: &mt, Mode: &mode})
		if err != nil || v.UID != s.UID || !v.Mtime.Equal(mt) || v.Mode != 0o444 {
			t.Fatalf("SetAttrs = %+v, %v", v, err)
		}
		got, _ := c.ByKey(ctx, "m", 0)
		if !got.Mtime.Equal(mt) || got.Mtime.Nanosecond() != 123456789 || got.Mode != 0o444 || got.Version != 1 {
			t.Fatalf("after SetAttrs: %+v", got)
		}
		// Mode 0 is the default (0644); no permission bits at all is
		// ModeNone, also when given as an st_mode (S_IFREG|000).
		for _, m := range []struct{ set, want uint32 }{{catalog.ModeNone, catalog.ModeNone}, {0, 0}, {0o100000, catalog.ModeNone}, {0o100640, 0o640}} {
			mode := m.set
			if _, err := c.SetAttrs(ctx, "m", catalog.Attrs{Mode: &mode}); err != nil {
				t.Fatal(err)
			}
			if got, _ := c.ByKey(ctx, "m", 0); got.Mode != m.want || catalog.Perm(got.Mode) != catalog.Perm(m.want) {
				t.Fatalf("SetAttrs mode %o: %o, want %o", m.set, got.Mode, m.want)
			}
		}
		if _, err := c.SetAttrs(ctx, "none", catalog.Attrs{Mtime: &mt}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("SetAttrs on nothing: %v", err)
		}
	})
	t.Run("Folders", func(t *testing.T) {
		c := open(t)
		for _, k := range []string{"e", "e/f", "e/f"} {
			if err := c.MakeFolder(ctx, k); err != nil {
				t.Fatalf("MakeFolder %s: %v", k, err)
			}
		}
		if _, dirs, _ := ls(t, c, "e/"); !reflect.DeepEqual(dirs, []string{"f"}) {
			t.Fatalf("ls e/ = %v", dirs)
		}
		if err := c.RemoveFolder(ctx, "e"); !errors.Is(err, catalog.ErrNotEmpty) {
			t.Fatalf("rmdir of a non-empty folder: %v", err)
		}
		save(t, c, NV("e/f/x", "x"))
		if _, err := c.Trash(ctx, "e/f/x"); err != nil {
			t.Fatal(err)
		}
		if _, dirs, _ := ls(t, c, "e/"); !reflect.DeepEqual(dirs, []string{"f"}) {
			t.Fatalf("an emptied folder must persist: %v", dirs)
		}
		if _, err := c.Save(ctx, []catalog.NewVersion{NV("e", "file")}); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("a file where a folder is: %v", err)
		}
		save(t, c, NV("file", "x"))
		if err := c.MakeFolder(ctx, "file"); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("a folder where a file is: %v", err)
		}
		if err := c.MakeFolder(ctx, "file/sub"); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("a folder under a file: %v", err)
		}
		for _, k := range []string{"e/f", "e"} {
			if err := c.RemoveFolder(ctx, k); err != nil {
				t.Fatalf("RemoveFolder %s: %v", k, err)
			}
		}
		if _, dirs, _ := ls(t, c, ""); !reflect.DeepEqual(dirs, []string{}) {
			t.Fatalf("after rmdir: %v", dirs)
		}
		if err := c.RemoveFolder(ctx, "e"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("rmdir twice: %v", err)
		}
	})
	// A folder's mode and a time set by chmod and touch are kept in its
	// record, made by SetAttrs for a folder that has none (keys beneath
	// it), moved by RenameFolder; Children reports the prefix's own record
	// and a stable stand-in time from beneath it.
	t.Run("FolderAttrs", func(t *testing.T) {
		c := open(t)
		nv := NV("p/q/x", "x")
		nv.Mtime = time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
		save(t, c, nv)
		d, err := c.Children(ctx, "p/")
		if err != nil || d.Folder != nil || !d.Beneath.Equal(nv.Mtime) {
			t.Fatalf("Children(p/) before: folder %+v beneath %v, %v; want no record, beneath %v", d.Folder, d.Beneath, err, nv.Mtime)
		}
		mt := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		mode := catalog.ModeOf(0o700)
		if _, err := c.SetAttrs(ctx, "p", catalog.Attrs{Mtime: &mt, Mode: &mode}); err != nil {
			t.Fatalf("SetAttrs of a folder: %v", err)
		}
		want := catalog.FolderRecord{Key: "p", Mtime: mt, Mode: 0o040700, Touched: true}
		if d, err = c.Children(ctx, "p/"); err != nil || d.Folder == nil || !d.Folder.Mtime.Equal(mt) ||
			d.Folder.Mode != want.Mode || !d.Folder.Touched || d.Folder.Key != "p" {
			t.Fatalf("Children(p/).Folder = %+v, %v; want %+v", d.Folder, err, want)
		}
		if _, dirs, _ := ls(t, c, ""); !reflect.DeepEqual(dirs, []string{"p"}) {
			t.Fatalf("ls = %v", dirs)
		}
		none := catalog.ModeNone // chmod 000
		if _, err := c.SetAttrs(ctx, "p", catalog.Attrs{Mode: &none}); err != nil {
			t.Fatal(err)
		}
		if d, _ = c.Children(ctx, "p/"); d.Folder == nil || d.Folder.Mode != 0o040000 || catalog.FolderMode(d.Folder.Mode) != 0 || !d.Folder.Mtime.Equal(mt) {
			t.Fatalf("after chmod 000: %+v", d.Folder)
		}
		// chmod alone: the time is not one set by touch.
		if _, err := c.SetAttrs(ctx, "p/q", catalog.Attrs{Mode: &mode}); err != nil {
			t.Fatal(err)
		}
		if d, _ = c.Children(ctx, "p/q/"); d.Folder == nil || d.Folder.Touched || catalog.FolderMode(d.Folder.Mode) != 0o700 {
			t.Fatalf("Children(p/q/).Folder after chmod = %+v", d.Folder)
		}
		if err := c.RenameFolder(ctx, "p", "r"); err != nil {
			t.Fatal(err)
		}
		if d, _ = c.Children(ctx, "r/"); d.Folder == nil || !d.Folder.Mtime.Equal(mt) || d.Folder.Mode != 0o040000 || !d.Folder.Touched || d.Folder.Key != "r" {
			t.Fatalf("Children(r/).Folder after RenameFolder = %+v", d.Folder)
		}
		if d, _ = c.Children(ctx, "r/q/"); d.Folder == nil || catalog.FolderMode(d.Folder.Mode) != 0o700 {
			t.Fatalf("Children(r/q/).Folder after RenameFolder = %+v", d.Folder)
		}
		if _, err := c.SetAttrs(ctx, "r/none", catalog.Attrs{Mtime: &mt}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("SetAttrs of no folder: %v", err)
		}
		if err := c.MakeFolder(ctx, "r"); err != nil {
			t.Fatalf("MakeFolder of a folder with a record: %v", err)
		}
		if d, _ = c.Children(ctx, "r/"); d.Folder == nil || !d.Folder.Mtime.Equal(mt) {
			t.Fatalf("MakeFolder changed the record: %+v", d.Folder)
		}
	})
	// rm -r in a mount: files to the trash, links removed, folders removed
	// bottom up. The removed folders and links wait in the trash, and
	// Restore brings each back as it was (a folder's mode and time, a
	// link's target); a name made again since is not taken back.
	t.Run("TrashFoldersAndLinks", func(t *testing.T) {
		c := open(t)
		save(t, c, NV("tr/a", "a"))
		for _, k := range []string{"tr", "tr/empty", "tr/again"} {
			if err := c.MakeFolder(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		mt := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		mode := catalog.ModeOf(0o750)
		if _, err := c.SetAttrs(ctx, "tr", catalog.Attrs{Mtime: &mt, Mode: &mode}); err != nil {
			t.Fatal(err)
		}
		if err := c.Symlink(ctx, "tr/l", "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Trash(ctx, "tr/a"); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"tr/l"} {
			if err := c.RemoveLink(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"tr/empty", "tr/again", "tr"} {
			if err := c.RemoveFolder(ctx, k); err != nil {
				t.Fatalf("RemoveFolder %s: %v", k, err)
			}
		}
		if _, dirs, _ := ls(t, c, ""); len(dirs) != 0 {
			t.Fatalf("a removed folder still listed: %v", dirs)
		}
		if err := c.MakeFolder(ctx, "tr/again"); err != nil { // made again: its trashed record goes
			t.Fatal(err)
		}
		tl, err := c.TrashList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range tl {
			got = append(got, e.Key+":"+e.Kind)
		}
		if want := []string{"tr:folder", "tr/a:", "tr/empty:folder", "tr/l:link"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("TrashList = %v, want %v", got, want)
		}
		for _, k := range []string{"tr/a", "tr", "tr/empty", "tr/l"} {
			e, err := c.Restore(ctx, k)
			if err != nil || e.Key != k {
				t.Fatalf("Restore %s = %+v, %v", k, e, err)
			}
		}
		files, dirs, links := ls(t, c, "tr/")
		if !reflect.DeepEqual(files, []string{"tr/a"}) || !reflect.DeepEqual(dirs, []string{"again", "empty"}) || !reflect.DeepEqual(links, []string{"tr/l->a"}) {
			t.Fatalf("after Restore: files %v, folders %v, links %v", files, dirs, links)
		}
		if d, err := c.Children(ctx, "tr/"); err != nil || d.Folder == nil || catalog.FolderMode(d.Folder.Mode) != 0o750 || !d.Folder.Mtime.Equal(mt) || !d.Folder.Touched {
			t.Fatalf("restored folder's record = %+v, %v; want mode 0750, time %v", d.Folder, err, mt)
		}
		if tl, _ := c.TrashList(ctx); len(tl) != 0 {
			t.Fatalf("trash after Restore: %+v", tl)
		}
		if _, err := c.Restore(ctx, "tr/l"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("Restore twice: %v", err)
		}
		// Purge deletes a folder or link in the trash for good.
		if err := c.RemoveFolder(ctx, "tr/again"); err != nil {
			t.Fatal(err)
		}
		if vs, err := c.Purge(ctx, "tr/again"); err != nil || len(vs) != 0 {
			t.Fatalf("Purge of a folder in the trash = %v, %v", vs, err)
		}
		if tl, _ := c.TrashList(ctx); len(tl) != 0 {
			t.Fatalf("trash after Purge: %+v", tl)
		}
		if _, err := c.Purge(ctx, "tr/again"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("Purge twice: %v", err)
		}
		// A link whose name is taken again is not restored over it.
		if err := c.RemoveLink(ctx, "tr/l"); err != nil {
			t.Fatal(err)
		}
		save(t, c, NV("tr/l", "file now"))
		if _, err := c.Restore(ctx, "tr/l"); err == nil {
			t.Fatal("a link restored over a file")
		}
	})
	// PurgeTrashed takes what the trash holds and nothing live. A key
	// written between a caller's look at the trash and its purge is kept
	// (ErrWrittenAgain: delete --permanent FOLDER/ took a file written
	// meanwhile), and a folder or link in the trash goes without the file
	// at its key (it took the file). A file made where a folder or link was
	// removed drops it from the trash, as mkdir or ln -s there does.
	t.Run("PurgeTrashedKeepsWhatIsLive", func(t *testing.T) {
		c := open(t)
		save(t, c, NV("p/a", "1"))
		save(t, c, NV("p/a", "2"))
		if _, err := c.Trash(ctx, "p/a"); err != nil {
			t.Fatal(err)
		}
		save(t, c, NV("p/a", "3")) // written after the caller read the trash
		if vs, err := c.PurgeTrashed(ctx, "p/a", ""); !errors.Is(err, catalog.ErrWrittenAgain) || len(vs) != 0 {
			t.Fatalf("PurgeTrashed of a key written again = %v, %v; want ErrWrittenAgain", vs, err)
		}
		if vs, err := c.Versions(ctx, "p/a", true); err != nil || len(vs) != 3 {
			t.Fatalf("after PurgeTrashed of a key written again: %d versions, %v; want 3", len(vs), err)
		}
		if _, err := c.Trash(ctx, "p/a"); err != nil {
			t.Fatal(err)
		}
		if vs, err := c.PurgeTrashed(ctx, "p/a", ""); err != nil || len(vs) != 3 {
			t.Fatalf("PurgeTrashed of a trashed key = %d versions, %v; want 3", len(vs), err)
		}
		if _, err := c.Versions(ctx, "p/a", true); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("purged key: %v", err)
		}
		if _, err := c.PurgeTrashed(ctx, "p/a", ""); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("PurgeTrashed twice: %v", err)
		}

		// A link removed where a file was trashed: restoring the file
		// keeps the link's record in the trash, held by the file, and
		// PurgeTrashed of the link takes it alone and keeps the file.
		save(t, c, NV("p/f", "f"))
		if _, err := c.Trash(ctx, "p/f"); err != nil {
			t.Fatal(err)
		}
		if err := c.Symlink(ctx, "p/f", "x"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveLink(ctx, "p/f"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Restore(ctx, "p/f"); err != nil {
			t.Fatal(err)
		}
		if vs, err := c.PurgeTrashed(ctx, "p/f", "link"); err != nil || len(vs) != 0 {
			t.Fatalf("PurgeTrashed of a link kept by a restore there = %v, %v", vs, err)
		}
		if _, err := c.PurgeTrashed(ctx, "p/f", "link"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("PurgeTrashed of the link twice: %v; want ErrNotFound", err)
		}
		if v, err := c.ByKey(ctx, "p/f", 0); err != nil || v.Version != 1 {
			t.Fatalf("the live file at a purged link's key: %+v, %v", v, err)
		}

		// Files made where a link and a folder were removed: by a save
		// and by a rename.
		if err := c.Symlink(ctx, "p/ln", "f"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveLink(ctx, "p/ln"); err != nil {
			t.Fatal(err)
		}
		if err := c.MakeFolder(ctx, "p/d"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveFolder(ctx, "p/d"); err != nil {
			t.Fatal(err)
		}
		save(t, c, NV("p/ln", "live data"))
		save(t, c, NV("p/tmp", "live d"))
		if _, err := c.Rename(ctx, "p/tmp", "p/d"); err != nil {
			t.Fatal(err)
		}
		if tl, err := c.TrashList(ctx); err != nil || len(tl) != 0 {
			t.Fatalf("trash after files took the names of a removed link and folder: %+v, %v", tl, err)
		}
		for _, n := range []struct{ key, kind string }{{"p/ln", "link"}, {"p/d", "folder"}} {
			if _, err := c.PurgeTrashed(ctx, n.key, n.kind); !errors.Is(err, catalog.ErrNotFound) {
				t.Errorf("PurgeTrashed %s %s: %v; want ErrNotFound", n.kind, n.key, err)
			}
			if _, err := c.ByKey(ctx, n.key, 0); err != nil {
				t.Errorf("live %s after PurgeTrashed: %v", n.key, err)
			}
		}
	})
	// PurgeTrashed with PurgeUnreferenced (the mount's purge of a renamed
	// temporary) keeps a key whose versions something refers to:
	// annotations, a collection's member, a run's input. A rename in the
	// mount purged them with all that referred to them.
	t.Run("PurgeUnreferencedKeepsReferenced", func(t *testing.T) {
		c := open(t)
		if _, err := c.CreateFeature(ctx, catalog.Feature{Name: "cell_type", Dtype: "str"}); err != nil {
			t.Fatal(err)
		}
		tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "sh", Kind: "command"})
		if err != nil {
			t.Fatal(err)
		}
		run, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID})
		if err != nil {
			t.Fatal(err)
		}
		refer := map[string]func(uid string) error{
			"u/annotated": func(uid string) error {
				_, err := c.Annotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"cell_type": {"monocyte"}}})
				return err
			},
			"u/labelled": func(uid string) error {
				if _, err := c.CreateLabel(ctx, catalog.Label{Name: "good"}); err != nil {
					return err
				}
				_, err := c.Annotate(ctx, uid, catalog.Annotations{Labels: []string{"good"}})
				return err
			},
			"u/member": func(uid string) error {
				_, err := c.SaveCollection(ctx, catalog.NewCollection{Name: "keep", Members: []string{uid}})
				return err
			},
			"u/input": func(uid string) error { return c.AddInputs(ctx, run.UID, []string{uid}) },
			"u/free":  func(string) error { return nil },
		}
		for key, fn := range refer {
			v := save1(t, c, NV(key, "data of "+key))
			if err := fn(v.UID); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			if _, err := c.Trash(ctx, key); err != nil {
				t.Fatal(err)
			}
			vs, err := c.PurgeTrashed(ctx, key, catalog.PurgeUnreferenced)
			if key == "u/free" {
				if err != nil || len(vs) != 1 {
					t.Fatalf("PurgeUnreferenced of %s, which nothing refers to = %v, %v", key, vs, err)
				}
				continue
			}
			if !errors.Is(err, catalog.ErrReferenced) || len(vs) != 0 {
				t.Fatalf("PurgeUnreferenced of %s = %v, %v; want ErrReferenced", key, vs, err)
			}
			if _, err := c.ByUID(ctx, v.UID); err != nil {
				t.Fatalf("%s after PurgeUnreferenced: %v", key, err)
			}
			if vs, err := c.PurgeTrashed(ctx, key, ""); err != nil || len(vs) != 1 {
				t.Fatalf("PurgeTrashed of %s = %v, %v", key, vs, err)
			}
		}
	})
	// An annotate or a collection's save racing the purge of a temporary:
	// either it lands first and the purge keeps the version
	// (ErrReferenced), or the purge does and it finds no version. Never
	// both: the check and the purge are one transaction, and PostgreSQL's
	// annotate and SaveCollection lock the version's row, which the purge
	// locks before its check.
	t.Run("PurgeUnreferencedRacesReferences", func(t *testing.T) {
		c := open(t)
		if _, err := c.CreateFeature(ctx, catalog.Feature{Name: "cell_type", Dtype: "str"}); err != nil {
			t.Fatal(err)
		}
		refer := []func(uid string) error{
			func(uid string) error {
				_, err := c.Annotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"cell_type": {"monocyte"}}})
				return err
			},
			func(uid string) error {
				_, err := c.SaveCollection(ctx, catalog.NewCollection{Name: "race", Members: []string{uid}})
				return err
			},
		}
		for i := range 30 {
			key := fmt.Sprintf("race/t%d", i)
			v := save1(t, c, NV(key, fmt.Sprintf("temporary %d", i)))
			if _, err := c.Trash(ctx, key); err != nil {
				t.Fatal(err)
			}
			var refErr, purgeErr error
			var wg sync.WaitGroup
			wg.Go(func() { refErr = refer[i%len(refer)](v.UID) })
			wg.Go(func() { _, purgeErr = c.PurgeTrashed(ctx, key, catalog.PurgeUnreferenced) })
			wg.Wait()
			_, lookErr := c.ByUID(ctx, v.UID)
			if purgeErr == nil && !(errors.Is(refErr, catalog.ErrNotFound) && errors.Is(lookErr, catalog.ErrNotFound)) {
				t.Fatalf("round %d: purged, yet the reference says %v and a look-up %v", i, refErr, lookErr)
			}
			if purgeErr != nil && !(errors.Is(purgeErr, catalog.ErrReferenced) && refErr == nil && lookErr == nil) {
				t.Fatalf("round %d: purge %v, reference %v, look-up %v", i, purgeErr, refErr, lookErr)
			}
		}
	})
	// A trashed file restored where a folder or link was removed after it
	// takes the name back: the folder's record leaves the trash in the
	// same transaction (what was under it stays). A link's stays, held by
	// the file, purgeable alone: the restore dropped it, and with it the
	// only copy of the link.
	t.Run("RestoreFileKeepsTrashedLink", func(t *testing.T) {
		c := open(t)
		save(t, c, NV("rf/ln", "1"), NV("rf/d", "2"), NV("rf/both", "3"))
		for _, k := range []string{"rf/ln", "rf/d", "rf/both"} {
			if _, err := c.Trash(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Symlink(ctx, "rf/ln", "x"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveLink(ctx, "rf/ln"); err != nil {
			t.Fatal(err)
		}
		if err := c.MakeFolder(ctx, "rf/d"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveFolder(ctx, "rf/d"); err != nil {
			t.Fatal(err)
		}
		if tl, err := c.TrashList(ctx); err != nil || len(tl) != 5 {
			t.Fatalf("trash before the restores: %+v, %v; want 3 files, a link, a folder", tl, err)
		}
		for _, k := range []string{"rf/ln", "rf/d"} {
			if e, err := c.Restore(ctx, k); err != nil || e.Kind != "" || e.Versions != 1 {
				t.Fatalf("Restore %s = %+v, %v; want its file's version", k, e, err)
			}
		}
		tl, err := c.TrashList(ctx)
		if err != nil || len(tl) != 2 || tl[0].Key != "rf/both" || tl[1].Key != "rf/ln" || tl[1].Kind != "link" {
			t.Fatalf("trash after restoring files over a removed link and folder: %+v, %v; want rf/both and the link rf/ln", tl, err)
		}
		// The link stays, held by the file: it cannot come back while
		// the file holds the name, and its purge leaves the file.
		if _, err := c.RestoreNode(ctx, "rf/ln"); !errors.Is(err, catalog.ErrConflict) {
			t.Errorf("RestoreNode of a link at a live file: %v; want ErrConflict", err)
		}
		if _, err := c.PurgeTrashed(ctx, "rf/ln", "link"); err != nil {
			t.Fatalf("PurgeTrashed of the link at a live file: %v", err)
		}
		for _, k := range []string{"rf/ln", "rf/d"} {
			if _, err := c.Restore(ctx, k); !errors.Is(err, catalog.ErrNotFound) {
				t.Errorf("Restore %s again: %v; want ErrNotFound", k, err)
			}
			if v, err := c.ByKey(ctx, k, 0); err != nil || v.Version != 1 || v.Trashed {
				t.Errorf("restored %s: %+v, %v", k, v, err)
			}
		}
		// A key written again whose old versions are restored: the folder
		// record went with the save already; the restore keeps every version.
		save(t, c, NV("rf/both", "4"))
		if e, err := c.Restore(ctx, "rf/both"); err != nil || e.Versions != 1 {
			t.Fatalf("Restore of a key written again = %+v, %v", e, err)
		}
		if vs, err := c.Versions(ctx, "rf/both", true); err != nil || len(vs) != 2 || vs[0].Trashed || vs[1].Trashed {
			t.Fatalf("versions of rf/both: %+v, %v", vs, err)
		}
		if tl, err := c.TrashList(ctx); err != nil || len(tl) != 0 {
			t.Fatalf("trash at the end: %+v, %v", tl, err)
		}
	})
	// A folder removed with WithRemovalFrom keeps when its removal began
	// (restore FOLDER/ leaves what was trashed under it before); one
	// without has none, and neither has a link.
	t.Run("RemovalFromKept", func(t *testing.T) {
		c := open(t)
		from := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.UTC)
		for _, k := range []string{"rf2/with", "rf2/without"} {
			if err := c.MakeFolder(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.RemoveFolder(catalog.WithRemovalFrom(ctx, from), "rf2/with"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveFolder(ctx, "rf2/without"); err != nil {
			t.Fatal(err)
		}
		if err := c.Symlink(ctx, "rf2/ln", "x"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveLink(catalog.WithRemovalFrom(ctx, from), "rf2/ln"); err != nil {
			t.Fatal(err)
		}
		want := from.Truncate(time.Microsecond)
		got := map[string]*time.Time{}
		tl, err := c.TrashList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range tl {
			got[e.Key] = e.RemovalFrom
		}
		if f := got["rf2/with"]; f == nil || !f.Equal(want) {
			t.Errorf("RemovalFrom of the folder removed with one: %v; want %v", f, want)
		}
		for _, k := range []string{"rf2/without", "rf2/ln"} {
			if f := got[k]; f != nil {
				t.Errorf("RemovalFrom of %s: %v; want none", k, f)
			}
		}
		if _, err := c.RestoreNode(ctx, "rf2/with"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveFolder(ctx, "rf2/with"); err != nil {
			t.Fatal(err)
		}
		if tl, err := c.TrashList(ctx); err != nil || !slices.ContainsFunc(tl, func(e catalog.TrashEntry) bool { return e.Key == "rf2/with" && e.RemovalFrom == nil }) {
			t.Errorf("removed again without one: %+v, %v; want no RemovalFrom", tl, err)
		}
	})
	// RestoreNode brings back the folder or link removed at a key whose
	// file is in the trash too (restore FOLDER/ where the folder is the
	// newer), and leaves the file there, restorable once the name is free.
	t.Run("RestoreNodeKeepsTrashedFile", func(t *testing.T) {
		c := open(t)
		save(t, c, NV("rn/d", "1"), NV("rn/ln", "2"))
		for _, k := range []string{"rn/d", "rn/ln"} {
			if _, err := c.Trash(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.MakeFolder(ctx, "rn/d"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveFolder(ctx, "rn/d"); err != nil {
			t.Fatal(err)
		}
		if err := c.Symlink(ctx, "rn/ln", "x"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveLink(ctx, "rn/ln"); err != nil {
			t.Fatal(err)
		}
		for k, kind := range map[string]string{"rn/d": "folder", "rn/ln": "link"} {
			if e, err := c.RestoreNode(ctx, k); err != nil || e.Kind != kind {
				t.Fatalf("RestoreNode %s = %+v, %v; want the %s", k, e, err, kind)
			}
			if _, err := c.RestoreNode(ctx, k); !errors.Is(err, catalog.ErrNotFound) {
				t.Errorf("RestoreNode %s again: %v; want ErrNotFound", k, err)
			}
		}
		tl, err := c.TrashList(ctx)
		if err != nil || len(tl) != 2 || tl[0].Key != "rn/d" || tl[0].Kind != "" || tl[1].Key != "rn/ln" || tl[1].Kind != "" {
			t.Fatalf("trash after RestoreNode: %+v, %v; want the files rn/d and rn/ln", tl, err)
		}
		if _, err := c.Restore(ctx, "rn/d"); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("Restore of the file under the live folder: %v; want ErrConflict", err)
		}
		if err := c.RemoveFolder(ctx, "rn/d"); err != nil {
			t.Fatal(err)
		}
		if e, err := c.Restore(ctx, "rn/d"); err != nil || e.Kind != "" || e.Versions != 1 {
			t.Fatalf("Restore of the file once the name is free = %+v, %v", e, err)
		}
	})
	// TrashList is in key order, and at one key an artifact comes before
	// the folder or link removed there: a sort by key alone, which is not
	// stable, put them either way, one way on bbolt (artifacts read by
	// stem) and another on PostgreSQL (by key), so ls --trash listed k and
	// k/ in different orders. 30 keys: a sort of 12 or fewer is stable.
	t.Run("TrashListOrder", func(t *testing.T) {
		c := open(t)
		var want []string
		for i := range 30 {
			k := fmt.Sprintf("ord/%02d", i)
			save(t, c, NV(k, k))
			if _, err := c.Trash(ctx, k); err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 {
				if err := c.MakeFolder(ctx, k); err != nil {
					t.Fatal(err)
				}
				if err := c.RemoveFolder(ctx, k); err != nil {
					t.Fatal(err)
				}
				want = append(want, k+":", k+":folder")
			} else {
				if err := c.Symlink(ctx, k, "t"); err != nil {
					t.Fatal(err)
				}
				if err := c.RemoveLink(ctx, k); err != nil {
					t.Fatal(err)
				}
				want = append(want, k+":", k+":link")
			}
		}
		tl, err := c.TrashList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range tl {
			got = append(got, e.Key+":"+e.Kind)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("TrashList order:\n got  %v\n want %v", got, want)
		}
	})
	// A folder moved onto names whose folders or links are in the trash
	// (RenameFolder, mv dir newdir) makes them live: their records leave
	// the trash in the same transaction, as a save, mkdir or ln -s there
	// drops them, and so does a link renamed onto such a name. Records of
	// names the move does not make live stay, and so does every trashed
	// file version. The trash under the source stays where it is: it is
	// the trash of the old names, as the source's trashed files (which a
	// rename leaves at their keys) are, so restore SRC/ brings it all back
	// together.
	t.Run("RenameFolderOverTrashedNames", func(t *testing.T) {
		c := open(t)
		save(t, c, NV("src/a", "a"), NV("src/q/b", "b"), NV("src/x", "x new"), NV("src/tf", "src trashed"),
			NV("dst/x", "x old"), NV("dst/tf", "dst trashed"))
		for _, k := range []string{"src/tf", "dst/x", "dst/tf"} {
			if _, err := c.Trash(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"src/empty", "src/old", "dst", "dst/sub", "dst/sub/deep", "dst/q", "dst/empty"} {
			if err := c.MakeFolder(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"src/ln", "src/gone", "dst/ln", "dst/keep", "dst/a"} {
			if err := c.Symlink(ctx, k, "target"); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"src/gone", "dst/ln", "dst/keep", "dst/a"} {
			if err := c.RemoveLink(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"src/old", "dst/sub/deep", "dst/sub", "dst/q", "dst/empty", "dst"} {
			if err := c.RemoveFolder(ctx, k); err != nil {
				t.Fatalf("RemoveFolder %s: %v", k, err)
			}
		}
		if err := c.RenameFolder(ctx, "src", "dst"); err != nil {
			t.Fatal(err)
		}
		files, dirs, links := ls(t, c, "dst/")
		if !reflect.DeepEqual(files, []string{"dst/a", "dst/x"}) || !reflect.DeepEqual(dirs, []string{"empty", "q"}) || !reflect.DeepEqual(links, []string{"dst/ln->target"}) {
			t.Fatalf("after RenameFolder: %v %v %v", files, dirs, links)
		}
		trash := func() []string {
			t.Helper()
			tl, err := c.TrashList(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range tl {
				got = append(got, e.Key+":"+e.Kind)
			}
			return got
		}
		if got, want := trash(), []string{"dst/keep:link", "dst/sub:folder", "dst/sub/deep:folder", "dst/tf:", "dst/x:",
			"src/gone:link", "src/old:folder", "src/tf:", "src/x:"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("TrashList after RenameFolder = %v, want %v", got, want)
		}
		// dst/x: the old trashed version stays trashed beside the moved
		// one; src/x's history stays in the trash, as Rename onto a key
		// leaves it.
		if vs, err := c.Versions(ctx, "dst/x", true); err != nil || len(vs) != 2 || !vs[0].Trashed || vs[1].Trashed {
			t.Fatalf("versions of dst/x: %+v, %v", vs, err)
		}
		for _, k := range []string{"dst", "dst/ln", "dst/q", "dst/empty", "dst/a"} {
			if _, err := c.PurgeTrashed(ctx, k, "folder"); !errors.Is(err, catalog.ErrNotFound) {
				t.Errorf("PurgeTrashed %s: %v; want ErrNotFound", k, err)
			}
		}
		// The source's trash comes back under its old names.
		for _, k := range []string{"src/gone", "src/old", "src/tf", "dst/keep"} {
			if _, err := c.Restore(ctx, k); err != nil {
				t.Errorf("Restore %s: %v", k, err)
			}
		}
		// A link renamed onto the name of a link in the trash.
		if err := c.Symlink(ctx, "dst/l2", "t"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveLink(ctx, "dst/l2"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Rename(ctx, "dst/ln", "dst/l2"); err != nil {
			t.Fatal(err)
		}
		if got, want := trash(), []string{"dst/sub:folder", "dst/sub/deep:folder", "dst/tf:", "dst/x:", "src/x:"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("TrashList at the end = %v, want %v", got, want)
		}
	})
	// Restoring a folder or link whose folders above were removed with it
	// (rm -r of x, restore x/y/z/) gives them records: their own from the
	// trash, else the restored one's time. They had none and showed 1970.
	t.Run("RestoreNestedGivesParentsRecords", func(t *testing.T) {
		c := open(t)
		for _, k := range []string{"x", "x/y", "x/y/z"} {
			if err := c.MakeFolder(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		mode := catalog.ModeOf(0o700)
		if _, err := c.SetAttrs(ctx, "x", catalog.Attrs{Mode: &mode}); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"x/y/z", "x/y", "x"} {
			if err := c.RemoveFolder(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Restore(ctx, "x/y/z"); err != nil {
			t.Fatal(err)
		}
		if d, err := c.Children(ctx, "x/"); err != nil || d.Folder == nil || catalog.FolderMode(d.Folder.Mode) != 0o700 {
			t.Fatalf("x after Restore x/y/z: record %+v, %v; want its own from the trash (mode 0700)", d.Folder, err)
		}
		if tl, _ := c.TrashList(ctx); len(tl) != 0 {
			t.Fatalf("trash after Restore x/y/z: %+v; want the parents out of it", tl)
		}
		// Parents with no record in the trash: the restored node's time.
		if err := c.MakeFolder(ctx, "p/q/r"); err != nil {
			t.Fatal(err)
		}
		if err := c.Symlink(ctx, "s/t/l", "x"); err != nil {
			t.Fatal(err)
		}
		d, err := c.Children(ctx, "p/q/")
		if err != nil || d.Folder != nil {
			t.Fatalf("p/q before: %+v, %v", d.Folder, err)
		}
		r, err := c.Children(ctx, "p/q/r/")
		if err != nil || r.Folder == nil {
			t.Fatalf("p/q/r: %+v, %v", r.Folder, err)
		}
		if err := c.RemoveFolder(ctx, "p/q/r"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveLink(ctx, "s/t/l"); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"p/q/r", "s/t/l"} {
			if _, err := c.Restore(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range []string{"p/", "p/q/"} {
			if d, err := c.Children(ctx, p); err != nil || d.Folder == nil || !d.Folder.Mtime.Equal(r.Folder.Mtime) {
				t.Fatalf("%s after Restore p/q/r: record %+v, %v; want the time of p/q/r, %v", p, d.Folder, err, r.Folder.Mtime)
			}
		}
		for _, p := range []string{"s/", "s/t/"} {
			if d, err := c.Children(ctx, p); err != nil || d.Folder == nil || d.Folder.Mtime.Unix() <= 0 {
				t.Fatalf("%s after Restore s/t/l: record %+v, %v; want the link's time", p, d.Folder, err)
			}
		}
		// A folder above that holds a live key gets only its own record
		// from the trash, no new one.
		save(t, c, NV("g/k", "k"), NV("h/k", "k"))
		for _, k := range []string{"g/f", "h", "h/f"} {
			if err := c.MakeFolder(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Trash(ctx, "h/k"); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"g/f", "h/f", "h"} {
			if err := c.RemoveFolder(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"h/k", "g/f", "h/f"} { // as restore h/ orders them
			if _, err := c.Restore(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		if d, err := c.Children(ctx, "g/"); err != nil || d.Folder != nil {
			t.Fatalf("g/ after Restore g/f: record %+v, %v; want none", d.Folder, err)
		}
		if d, err := c.Children(ctx, "h/"); err != nil || d.Folder == nil {
			t.Fatalf("h/ after Restore h/f: record %+v, %v; want its own from the trash", d.Folder, err)
		}
		if tl, _ := c.TrashList(ctx); len(tl) != 0 {
			t.Fatalf("trash at the end: %+v", tl)
		}
	})
	t.Run("Links", func(t *testing.T) {
		c := open(t)
		if err := c.Symlink(ctx, "d/l", "../x/y"); err != nil {
			t.Fatal(err)
		}
		if _, _, links := ls(t, c, "d/"); !reflect.DeepEqual(links, []string{"d/l->../x/y"}) {
			t.Fatalf("links %v", links)
		}
		if err := c.Symlink(ctx, "d/l", "z"); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("link twice: %v", err)
		}
		if _, err := c.Save(ctx, []catalog.NewVersion{NV("d/l", "x")}); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("a file where a link is: %v", err)
		}
		if _, err := c.Rename(ctx, "d/l", "d/m"); err != nil {
			t.Fatal(err)
		}
		if _, _, links := ls(t, c, "d/"); !reflect.DeepEqual(links, []string{"d/m->../x/y"}) {
			t.Fatalf("links after rename %v", links)
		}
		// rename(2) onto a name replaces it (ln -sfn, rsync): a link onto
		// a link, onto a file (whose artifact goes to the trash), a file
		// onto a link.
		if err := c.Symlink(ctx, "d/new", "y"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Rename(ctx, "d/new", "d/m"); err != nil {
			t.Fatalf("a link onto a link: %v", err)
		}
		if _, _, links := ls(t, c, "d/"); !reflect.DeepEqual(links, []string{"d/m->y"}) {
			t.Fatalf("links after a link renamed onto one %v", links)
		}
		save(t, c, NV("d/f", "f"))
		if _, err := c.Rename(ctx, "d/m", "d/f"); err != nil {
			t.Fatalf("a link onto a file: %v", err)
		}
		if files, _, links := ls(t, c, "d/"); len(files) != 0 || !reflect.DeepEqual(links, []string{"d/f->y"}) {
			t.Fatalf("after a link renamed onto a file: %v %v", files, links)
		}
		if vs, err := c.Versions(ctx, "d/f", true); err != nil || len(vs) != 1 || !vs[0].Trashed {
			t.Fatalf("the replaced file's versions: %+v, %v", vs, err)
		}
		save(t, c, NV("d/g", "g"))
		if v, err := c.Rename(ctx, "d/g", "d/f"); err != nil || v.Key != "d/f" {
			t.Fatalf("a file onto a link: %+v, %v", v, err)
		}
		if files, _, links := ls(t, c, "d/"); !reflect.DeepEqual(files, []string{"d/f"}) || len(links) != 0 {
			t.Fatalf("after a file renamed onto a link: %v %v", files, links)
		}
		if err := c.Symlink(ctx, "d/m", "../x/y"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveLink(ctx, "d/m"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveLink(ctx, "d/m"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("remove twice: %v", err)
		}
	})
}
