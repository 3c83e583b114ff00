// Package catalogtest is the conformance suite every catalog.Catalog must
// pass. Call Run from the store's tests with a constructor of empty stores.
package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// NV returns a NewVersion of key whose content is named by content.
func NV(key, content string) catalog.NewVersion {
	now := time.Now()
	return catalog.NewVersion{
		Key: key, Kind: "file", Digest: ref.Sum([]byte(content)), Manifest: "m" + content,
		Size: int64(len(content)), CreatedBy: "tester", CreatedAt: now, Mtime: now,
	}
}

// Run runs the suite.
func Run(t *testing.T, open func(t *testing.T) catalog.Catalog) {
	ctx := context.Background()
	save := func(t *testing.T, c catalog.Catalog, nvs ...catalog.NewVersion) []catalog.Saved {
		t.Helper()
		s, err := c.Save(ctx, nvs)
		if err != nil {
			t.Fatalf("Save: %v", err)
		}
		return s
	}

	t.Run("VersionsAndUIDs", func(t *testing.T) {
		c := open(t)
		s1 := save(t, c, NV("exp/a.csv", "1"))[0]
		s2 := save(t, c, NV("exp/a.csv", "2"))[0]
		s3 := save(t, c, NV("exp/a.csv", "2"))[0]
		if s1.Version.Version != 1 || s2.Version.Version != 2 {
			t.Fatalf("numbers %d %d", s1.Version.Version, s2.Version.Version)
		}
		if !s3.Unchanged || s3.Version.UID != s2.Version.UID {
			t.Fatalf("same bytes made a version: %+v", s3)
		}
		if len(s1.Version.UID) != ref.UIDLen || s1.Version.Stem() != s2.Version.Stem() || s1.Version.UID == s2.Version.UID {
			t.Fatalf("uids %s %s", s1.Version.UID, s2.Version.UID)
		}
		if !strings.HasSuffix(s1.Version.UID, "0000") || !strings.HasSuffix(s2.Version.UID, "0001") {
			t.Fatalf("suffixes %s %s", s1.Version.UID, s2.Version.UID)
		}
		// Same bytes under another key: a new artifact.
		o := save(t, c, NV("exp/b.csv", "2"))[0]
		if o.Unchanged || o.Version.Stem() == s2.Version.Stem() {
			t.Fatalf("other key: %+v", o)
		}
		latest, err := c.ByKey(ctx, "exp/a.csv", 0)
		if err != nil || latest.UID != s2.Version.UID {
			t.Fatalf("ByKey latest = %s, %v", latest.UID, err)
		}
		v1, err := c.ByKey(ctx, "exp/a.csv", 1)
		if err != nil || v1.UID != s1.Version.UID {
			t.Fatalf("ByKey v1 = %s, %v", v1.UID, err)
		}
		if _, err := c.ByKey(ctx, "exp/a.csv", 3); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("ByKey v3: %v", err)
		}
		for _, p := range []string{s2.Version.UID, s2.Version.UID[:8], s2.Version.UID[:16]} {
			v, err := c.ByUID(ctx, p)
			if err != nil || v.UID != s2.Version.UID {
				t.Fatalf("ByUID(%s) = %s, %v", p, v.UID, err)
			}
		}
		if _, err := c.ByUID(ctx, "zzzzzzzzzzzz"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown uid: %v", err)
		}
		if _, err := c.ByUID(ctx, "short"); !errors.Is(err, ref.ErrBadUID) {
			t.Fatalf("short uid: %v", err)
		}
		vs, err := c.Versions(ctx, "exp/a.csv", false)
		if err != nil || len(vs) != 2 || vs[0].Version != 1 {
			t.Fatalf("Versions = %v, %v", vs, err)
		}
	})

	t.Run("AmbiguousPrefix", func(t *testing.T) {
		c := open(t)
		s := save(t, c, NV("k", "1"))[0]
		s2 := save(t, c, NV("k", "2"))[0]
		// A stem names the artifact: its latest version.
		if v, err := c.ByUID(ctx, s.Version.Stem()[:9]); err != nil || v.UID != s2.Version.UID {
			t.Fatalf("stem prefix = %s, %v; want the latest", v.UID, err)
		}
		// Stem plus part of a suffix matches both versions: ambiguous.
		_, err := c.ByUID(ctx, s.Version.Stem()+"0")
		var amb *catalog.AmbiguousError
		if !errors.As(err, &amb) || len(amb.Candidates) != 2 {
			t.Fatalf("stem as prefix: %v", err)
		}
		if !strings.Contains(err.Error(), s.Version.UID) {
			t.Fatalf("message does not list candidates: %v", err)
		}
	})

	t.Run("Revises", func(t *testing.T) {
		c := open(t)
		s := save(t, c, NV("r/a", "1"))[0]
		save(t, c, NV("r/b", "1"))
		nv := NV("r/a", "2")
		nv.Revises = s.Version.UID[:12] // a prefix: the uid it names is kept
		out, err := c.Save(ctx, []catalog.NewVersion{nv})
		if err != nil {
			t.Fatal(err)
		}
		// The new version records what it revises, and keeps it.
		if got := out[0].Version.Revises; got != s.Version.UID {
			t.Fatalf("saved revises = %q, want %s", got, s.Version.UID)
		}
		if v, err := c.ByUID(ctx, out[0].Version.UID); err != nil || v.Revises != s.Version.UID {
			t.Fatalf("ByUID: revises = %q, %v; want %s", v.Revises, err, s.Version.UID)
		}
		if v, err := c.ByKey(ctx, "r/a", 0); err != nil || v.Revises != s.Version.UID {
			t.Fatalf("ByKey: revises = %q, %v; want %s", v.Revises, err, s.Version.UID)
		}
		if v, err := c.ByUID(ctx, s.Version.UID); err != nil || v.Revises != "" {
			t.Fatalf("the first version revises %q, %v; want none", v.Revises, err)
		}
		nv = NV("r/b", "3")
		nv.Revises = s.Version.UID
		if _, err := c.Save(ctx, []catalog.NewVersion{nv}); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("revises of another key: %v", err)
		}
	})

	// A new version saved without a description keeps the latest live
	// version's, as LaminDB carries a revised artifact's forward: v2 saved
	// without one lost "batch 1", and search (latest versions) found
	// nothing. A key written again after its trash starts afresh.
	t.Run("DescriptionCarriedForward", func(t *testing.T) {
		c := open(t)
		describedAt := func(key, content, desc string) catalog.NewVersion {
			nv := NV(key, content)
			nv.Description = desc
			return nv
		}
		described := func(content, desc string) catalog.NewVersion { return describedAt("d/k.csv", content, desc) }
		for _, tc := range []struct{ content, given, want string }{
			{"1", "batch 1", "batch 1"},
			{"2", "", "batch 1"},
			{"3", "batch three", "batch three"},
			{"4", "", "batch three"},
		} {
			s := save(t, c, described(tc.content, tc.given))[0]
			v, err := c.ByKey(ctx, "d/k.csv", 0)
			if err != nil || s.Version.Description != tc.want || v.Description != tc.want {
				t.Fatalf("content %s saved with %q: description %q, stored %q, %v; want %q", tc.content, tc.given, s.Version.Description, v.Description, err, tc.want)
			}
		}
		if v1, err := c.ByKey(ctx, "d/k.csv", 1); err != nil || v1.Description != "batch 1" {
			t.Fatalf("v1 description %q, %v", v1.Description, err)
		}
		hits, err := c.Search(ctx, "three", 10)
		if err != nil || len(hits) != 1 || hits[0].Version.Version != 4 {
			t.Fatalf("search of the carried description: %+v, %v; want v4", hits, err)
		}
		// A batch of versions of one key: each takes the one before.
		out := save(t, c, NV("d/b.csv", "1"), describedAt("d/b.csv", "2", "b2"), NV("d/b.csv", "3"))
		if out[0].Version.Description != "" || out[2].Version.Description != "b2" {
			t.Fatalf("in one batch: %q, %q; want \"\", b2", out[0].Version.Description, out[2].Version.Description)
		}
		if _, err := c.Trash(ctx, "d/k.csv"); err != nil {
			t.Fatal(err)
		}
		if s := save(t, c, NV("d/k.csv", "5"))[0]; s.Version.Description != "" {
			t.Fatalf("written again after its trash: description %q, want none", s.Version.Description)
		}
		// NoDescription clears it (save -d ''): no later version carries
		// it back; v1 keeps its own.
		save(t, c, describedAt("d/c.csv", "1", "old words"))
		cleared := NV("d/c.csv", "2")
		cleared.NoDescription = true
		for i, nv := range []catalog.NewVersion{cleared, NV("d/c.csv", "3")} {
			s := save(t, c, nv)[0]
			v, err := c.ByKey(ctx, "d/c.csv", 0)
			if err != nil || s.Version.Description != "" || v.Description != "" {
				t.Fatalf("v%d after NoDescription: description %q, stored %q, %v; want none", i+2, s.Version.Description, v.Description, err)
			}
		}
		if v1, err := c.ByKey(ctx, "d/c.csv", 1); err != nil || v1.Description != "old words" {
			t.Fatalf("v1 description %q, %v", v1.Description, err)
		}
	})

	t.Run("FileFolderConflicts", func(t *testing.T) {
		c := open(t)
		save(t, c, NV("a/b", "1"))
		for _, k := range []string{"a/b/c", "a/b/c/d", "a"} {
			if _, err := c.Save(ctx, []catalog.NewVersion{NV(k, "x")}); !errors.Is(err, catalog.ErrConflict) {
				t.Errorf("Save(%s): %v, want ErrConflict", k, err)
			}
		}
		save(t, c, NV("a/bc", "1")) // a sibling that only shares a prefix
		if _, err := c.Save(ctx, []catalog.NewVersion{NV("bad//key", "x")}); !errors.Is(err, ref.ErrBadKey) {
			t.Fatalf("bad key: %v", err)
		}
	})

	t.Run("AllOrNothing", func(t *testing.T) {
		c := open(t)
		save(t, c, NV("x/file", "1"))
		_, err := c.Save(ctx, []catalog.NewVersion{NV("ok/1", "1"), NV("x/file/under", "2")})
		if err == nil {
			t.Fatal("batch with a conflict succeeded")
		}
		if _, err := c.ByKey(ctx, "ok/1", 0); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("half a batch was recorded: %v", err)
		}
	})

	t.Run("KindChange", func(t *testing.T) {
		c := open(t)
		save(t, c, NV("z", "1"))
		nv := NV("z", "2")
		nv.Kind = "folder"
		if _, err := c.Save(ctx, []catalog.NewVersion{nv}); !errors.Is(err, catalog.ErrKind) {
			t.Fatalf("kind change: %v", err)
		}
	})

	t.Run("ListPaging", func(t *testing.T) {
		c := open(t)
		var nvs []catalog.NewVersion
		for i := 0; i < 25; i++ {
			nvs = append(nvs, NV(fmt.Sprintf("p/%02d", i), fmt.Sprint(i)))
		}
		nvs = append(nvs, NV("q/other", "o"), NV("p/05", "new"))
		save(t, c, nvs...)
		var got []string
		after := ""
		for {
			page, err := c.List(ctx, catalog.Query{Prefix: "p/", After: after, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, v := range page {
				got = append(got, v.Key)
				if v.Key == "p/05" && v.Version != 2 {
					t.Fatalf("p/05 listed at version %d", v.Version)
				}
			}
			after = page[len(page)-1].Key
		}
		if len(got) != 25 || got[0] != "p/00" || got[24] != "p/24" {
			t.Fatalf("listed %v", got)
		}
	})

	t.Run("TrashRestorePurge", func(t *testing.T) {
		c := open(t)
		save(t, c, NV("t/a", "1"))
		save(t, c, NV("t/a", "2"))
		e, err := c.Trash(ctx, "t/a")
		if err != nil || e.Versions != 2 {
			t.Fatalf("Trash = %+v, %v", e, err)
		}
		if _, err := c.ByKey(ctx, "t/a", 0); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("trashed key resolves: %v", err)
		}
		if l, _ := c.List(ctx, catalog.Query{Prefix: "t/"}); len(l) != 0 {
			t.Fatalf("trashed key listed: %v", l)
		}
		if tl, _ := c.TrashList(ctx); len(tl) != 1 || tl[0].Key != "t/a" {
			t.Fatalf("TrashList = %v", tl)
		}
		// A file may now sit where the trashed key was a prefix... and the
		// trashed key's numbers continue when it is written again.
		s := save(t, c, NV("t/a", "3"))[0]
		if s.Version.Version != 3 {
			t.Fatalf("version after trash = %d, want 3", s.Version.Version)
		}
		// Written again, its trashed versions are still listed in the trash.
		if tl, _ := c.TrashList(ctx); len(tl) != 1 || tl[0].Key != "t/a" || tl[0].Versions != 2 {
			t.Fatalf("TrashList after the key was written again = %+v, want t/a with 2 versions", tl)
		}
		if _, err := c.Restore(ctx, "t/a"); err != nil {
			t.Fatal(err)
		}
		vs, _ := c.Versions(ctx, "t/a", false)
		if len(vs) != 3 {
			t.Fatalf("after restore %d versions", len(vs))
		}
		if _, err := c.Restore(ctx, "t/a"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("restore with empty trash: %v", err)
		}
		// Restore refuses a place now taken.
		save(t, c, NV("u/f", "1"))
		c.Trash(ctx, "u/f")
		save(t, c, NV("u/f/inner", "1"))
		if _, err := c.Restore(ctx, "u/f"); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("restore over a folder: %v", err)
		}
		gone, err := c.Purge(ctx, "t/a")
		if err != nil || len(gone) != 3 {
			t.Fatalf("Purge = %d, %v", len(gone), err)
		}
		if _, err := c.ByUID(ctx, gone[0].UID); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("purged uid resolves: %v", err)
		}
		n := 0
		c.Each(ctx, func(catalog.Version) error { n++; return nil })
		if n != 2 {
			t.Fatalf("Each saw %d versions, want 2", n)
		}
	})

	// A key written again after an rm keeps its history in the trash:
	// ByKeyWithTrash finds it by number (Snakemake reruns), ByKey does not.
	t.Run("TrashedVersionsByNumber", func(t *testing.T) {
		c := open(t)
		save(t, c, NV("s/count.txt", "1"))
		save(t, c, NV("s/count.txt", "2"))
		if _, err := c.Trash(ctx, "s/count.txt"); err != nil {
			t.Fatal(err)
		}
		// Wholly in the trash: numbers resolve, the latest does not.
		if v, err := catalog.ByKeyWithTrash(ctx, c, "s/count.txt", 2); err != nil || !v.Trashed || v.Version != 2 || v.Digest != ref.Sum([]byte("2")) {
			t.Fatalf("ByKeyWithTrash of a trashed key's v2 = %+v, %v", v, err)
		}
		if _, err := catalog.ByKeyWithTrash(ctx, c, "s/count.txt", 0); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("latest of a trashed key: %v", err)
		}
		save(t, c, NV("s/count.txt", "3"))
		if _, err := c.ByKey(ctx, "s/count.txt", 1); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("ByKey of a trashed version: %v", err)
		}
		v, err := catalog.ByKeyWithTrash(ctx, c, "s/count.txt", 1)
		if err != nil || !v.Trashed || v.TrashedAt == nil || v.Version != 1 || v.Digest != ref.Sum([]byte("1")) {
			t.Fatalf("ByKeyWithTrash v1 = %+v, %v", v, err)
		}
		if v, err := catalog.ByKeyWithTrash(ctx, c, "s/count.txt", 3); err != nil || v.Trashed || v.Version != 3 {
			t.Fatalf("ByKeyWithTrash v3 (live) = %+v, %v", v, err)
		}
		if _, err := catalog.ByKeyWithTrash(ctx, c, "s/count.txt", 4); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("ByKeyWithTrash v4 (none): %v", err)
		}
		all, err := c.Versions(ctx, "s/count.txt", true)
		if err != nil || len(all) != 3 || all[0].Version != 1 || !all[0].Trashed || !all[1].Trashed || all[2].Trashed {
			t.Fatalf("Versions with trash = %+v, %v", all, err)
		}
	})

	// A key trashed twice (rm, written again, rm) has two trash entries:
	// RestoreTrashedWith brings back the one its uid was trashed with, and
	// leaves the other in the trash. Restore by a uid brought back both.
	t.Run("RestoreTrashedWith", func(t *testing.T) {
		c := open(t)
		v1 := save(t, c, NV("r/k", "1"))[0].Version
		v2 := save(t, c, NV("r/k", "2"))[0].Version
		if _, err := c.Trash(ctx, "r/k"); err != nil {
			t.Fatal(err)
		}
		v3 := save(t, c, NV("r/k", "3"))[0].Version
		if _, err := c.Trash(ctx, "r/k"); err != nil {
			t.Fatal(err)
		}
		trashed := func() map[int]bool {
			t.Helper()
			vs, err := c.Versions(ctx, "r/k", true)
			if err != nil {
				t.Fatal(err)
			}
			out := map[int]bool{}
			for _, v := range vs {
				out[v.Version] = v.Trashed
			}
			return out
		}
		// The later entry: v3 alone comes back, the latest.
		e, err := c.RestoreTrashedWith(ctx, v3.UID)
		if err != nil || e.Key != "r/k" || e.Versions != 1 {
			t.Fatalf("RestoreTrashedWith(v3) = %+v, %v", e, err)
		}
		if tr := trashed(); tr[3] || !tr[1] || !tr[2] {
			t.Fatalf("after RestoreTrashedWith(v3), trashed = %v; want v1 and v2 only", tr)
		}
		if v, err := c.ByKey(ctx, "r/k", 0); err != nil || v.Version != 3 {
			t.Fatalf("latest after RestoreTrashedWith(v3) = %+v, %v", v, err)
		}
		if _, err := c.RestoreTrashedWith(ctx, v3.UID); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("RestoreTrashedWith of a live version: %v", err)
		}
		// The earlier entry, named by either of its versions: both.
		if tl, _ := c.TrashList(ctx); len(tl) != 1 || tl[0].Versions != 2 || !tl[0].Live {
			t.Fatalf("TrashList = %+v", tl)
		}
		if e, err := c.RestoreTrashedWith(ctx, v1.UID); err != nil || e.Versions != 2 {
			t.Fatalf("RestoreTrashedWith(v1) = %+v, %v", e, err)
		}
		if tr := trashed(); tr[1] || tr[2] || tr[3] {
			t.Fatalf("after RestoreTrashedWith(v1), trashed = %v", tr)
		}
		// The earlier entry alone, the later one staying in the trash: the
		// latest live version is the earlier entry's.
		if _, err := c.Trash(ctx, "r/k"); err != nil {
			t.Fatal(err)
		}
		v4 := save(t, c, NV("r/k", "4"))[0].Version
		if _, err := c.Trash(ctx, "r/k"); err != nil {
			t.Fatal(err)
		}
		if e, err := c.RestoreTrashedWith(ctx, v2.UID); err != nil || e.Versions != 3 {
			t.Fatalf("RestoreTrashedWith(v2) = %+v, %v", e, err)
		}
		if v, err := c.ByKey(ctx, "r/k", 0); err != nil || v.Version != 3 {
			t.Fatalf("latest after restoring the earlier entry = %+v, %v", v, err)
		}
		if tr := trashed(); !tr[4] || tr[1] || tr[3] {
			t.Fatalf("after restoring the earlier entry, trashed = %v", tr)
		}
		// Written again, the next number follows every version.
		if s := save(t, c, NV("r/k", "5"))[0].Version; s.Version != 5 {
			t.Fatalf("saved v%d, want v5", s.Version)
		}
		if _, err := c.Restore(ctx, "r/k"); err != nil {
			t.Fatal(err)
		}
		if v, err := c.ByKey(ctx, "r/k", 0); err != nil || v.Version != 5 || v4.Version != 4 {
			t.Fatalf("latest after restoring v4 = %+v, %v", v, err)
		}
		// A place taken since is refused, as Restore refuses it.
		w1 := save(t, c, NV("r/f", "1"))[0].Version
		if _, err := c.Trash(ctx, "r/f"); err != nil {
			t.Fatal(err)
		}
		save(t, c, NV("r/f/inner", "1"))
		if _, err := c.RestoreTrashedWith(ctx, w1.UID); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("RestoreTrashedWith over a folder: %v", err)
		}
		if _, err := c.RestoreTrashedWith(ctx, "nosuchuid"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("RestoreTrashedWith of no version: %v", err)
		}
	})

	t.Run("Outbox", func(t *testing.T) {
		c := open(t)
		s := save(t, c, NV("o/a", "1"), NV("o/b", "1"))
		ob, err := c.Outbox(ctx)
		if err != nil || len(ob) != 2 {
			t.Fatalf("Outbox = %v, %v", ob, err)
		}
		if err := c.OutboxDone(ctx, []string{s[0].Version.UID}); err != nil {
			t.Fatal(err)
		}
		if ob, _ = c.Outbox(ctx); len(ob) != 1 || ob[0].UID != s[1].Version.UID {
			t.Fatalf("Outbox after done = %v", ob)
		}
	})

	t.Run("Counts", func(t *testing.T) {
		c := open(t)
		save(t, c, NV("c/a", "1"), NV("c/b", "22"))
		save(t, c, NV("c/a", "333"))
		c.Trash(ctx, "c/b")
		n, err := c.Counts(ctx)
		if err != nil || n.Artifacts != 1 || n.Versions != 2 || n.Trashed != 1 || n.Bytes != 6 {
			t.Fatalf("Counts = %+v, %v", n, err)
		}
	})

	runTree(t, open)
	runWrite(t, open)
	runAnnotate(t, open) // annotate.go
	runDelete(t, open)   // delete.go
	runRuns(t, open)     // runs.go

	t.Run("ConcurrentSaves", func(t *testing.T) {
		c := open(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					if _, err := c.Save(ctx, []catalog.NewVersion{NV("same/key", fmt.Sprintf("%d-%d", w, i))}); err != nil {
						errs <- err
						return
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		vs, err := c.Versions(ctx, "same/key", false)
		if err != nil || len(vs) != 80 {
			t.Fatalf("%d versions, %v; want 80", len(vs), err)
		}
		for i, v := range vs {
			if v.Version != i+1 {
				t.Fatalf("version %d numbered %d", i+1, v.Version)
			}
		}
	})
}
