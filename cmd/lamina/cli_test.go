package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

const samples = "../../../shared/data/samples"

type savedRow struct {
	Key       string `json:"key"`
	Version   int    `json:"version"`
	UID       string `json:"uid"`
	Unchanged bool   `json:"unchanged"`
	NewChunks int    `json:"new_chunks"`
}

func TestQuickstart(t *testing.T) {
	e := newEnv(t)
	e.fails("run `lamina init", "ls")
	e.init()
	info := e.ok("info")
	if !strings.Contains(info, "artifacts  0") || !strings.Contains(info, e.path("storage")) {
		t.Fatalf("info:\n%s", info)
	}
	v1 := e.write("counts.csv", []byte("gene,count\nCD3E,5\n"))
	var s []savedRow
	e.jsonOut(&s, "save", v1, "--key", "experiments/batch1.csv", "--description", "batch 1 counts", "--format", "json")
	if len(s) != 1 || s[0].Version != 1 || s[0].Unchanged {
		t.Fatalf("first save: %+v", s)
	}
	first := s[0]
	v2 := e.write("counts_v2.csv", []byte("gene,count\nCD3E,7\n"))
	e.jsonOut(&s, "save", v2, "--key", "experiments/batch1.csv", "--format", "json")
	if s[0].Version != 2 || s[0].UID[:16] != first.UID[:16] {
		t.Fatalf("second save: %+v", s)
	}
	// Saved without --description, v2 keeps v1's, and search finds it.
	if out := e.ok("show", "experiments/batch1.csv", "--format", "json"); !strings.Contains(out, `"description": "batch 1 counts"`) {
		t.Fatalf("v2 saved without a description shows:\n%s", out)
	}
	if out := e.ok("search", "counts"); !strings.Contains(out, "experiments/batch1.csv") {
		t.Fatalf("search of v1's description after v2: %s", out)
	}
	// The same bytes again: no new version, and the command says so.
	out := e.ok("save", v2, "--key", "experiments/batch1.csv")
	if !strings.Contains(out, "unchanged") || !strings.Contains(out, s[0].UID) {
		t.Fatalf("unchanged save said: %s", out)
	}
	// Same bytes under another key: a new artifact, no new chunks.
	e.jsonOut(&s, "save", v2, "--key", "experiments/copy.csv", "--format", "json")
	if s[0].Version != 1 || s[0].NewChunks != 0 {
		t.Fatalf("copy: %+v", s)
	}
	// Many files, one call.
	fcs, _ := filepath.Glob(filepath.Join(samples, "*.fcs"))
	if len(fcs) < 2 {
		t.Fatalf("sample FCS files missing under %s", samples)
	}
	e.jsonOut(&s, append(append([]string{"save"}, fcs...), "--key-prefix", "flow_cytometry/", "--format", "json")...)
	if len(s) != len(fcs) || !strings.HasPrefix(s[0].Key, "flow_cytometry/") {
		t.Fatalf("multi save: %+v", s)
	}
	// A folder artifact.
	e.ok("save", filepath.Join(samples, "pbmc_small.zarr"), "--key", "scrna/pbmc.zarr")
	var show catalog.Version
	e.jsonOut(&show, "show", "scrna/pbmc.zarr", "--format", "json")
	if show.Kind != "folder" || show.NFiles < 10 {
		t.Fatalf("folder: %+v", show)
	}

	var ls []catalog.Version
	e.jsonOut(&ls, "ls", "experiments/", "--format", "json")
	if len(ls) != 2 || ls[0].Key != "experiments/batch1.csv" || ls[0].Version != 2 {
		t.Fatalf("ls: %+v", ls)
	}
	csv := e.ok("ls", "experiments/", "--format", "csv")
	if lines := strings.Split(strings.TrimSpace(csv), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "key,version,uid") {
		t.Fatalf("csv:\n%s", csv)
	}
	e.jsonOut(&ls, "ls", "--versions", "experiments/batch1.csv", "--format", "json")
	if len(ls) != 2 || ls[0].Description != "batch 1 counts" {
		t.Fatalf("versions: %+v", ls)
	}
	e.jsonOut(&show, "show", "experiments/batch1.csv@v1", "--format", "json")
	if show.UID != first.UID || show.Size != 18 || show.Suffix != ".csv" {
		t.Fatalf("show: %+v", show)
	}

	// get: by key@vN to a file, by uid prefix to stdout, a folder to a folder.
	old := e.path("old.csv")
	e.ok("get", "experiments/batch1.csv@v1", "-o", old)
	if b, _ := os.ReadFile(old); string(b) != "gene,count\nCD3E,5\n" {
		t.Fatalf("get v1 = %q", b)
	}
	e.fails("already exists", "get", "experiments/batch1.csv@v1", "-o", old)
	if out := e.ok("get", first.UID[:10], "-o", "-"); out != "gene,count\nCD3E,7\n" {
		t.Fatalf("get by stem prefix (latest) = %q", out)
	}
	if out := e.ok("get", first.UID, "-o", "-"); out != "gene,count\nCD3E,5\n" {
		t.Fatalf("get by uid = %q", out)
	}
	z := e.path("z")
	e.ok("get", "scrna/pbmc.zarr", "-o", z)
	assertSameTree(t, filepath.Join(samples, "pbmc_small.zarr"), z)
	// -o an existing folder (or a path ending in /) writes into it, as cp does.
	into := e.path("into")
	os.Mkdir(into, 0o755)
	e.ok("get", "experiments/batch1.csv@v1", "-o", into)
	e.fails("already exists", "get", "experiments/batch1.csv", "-o", into)
	e.ok("get", "experiments/batch1.csv", "-o", into+"/", "--force")
	e.ok("get", "experiments/batch1.csv", "-o", "/dev/null") // written into, not "already exists"
	e.fails("--key is empty", "save", filepath.Join(into, "batch1.csv"), "--key", "")
	if b, _ := os.ReadFile(filepath.Join(into, "batch1.csv")); string(b) != "gene,count\nCD3E,7\n" {
		t.Fatalf("get -o FOLDER --force = %q", b)
	}
	e.ok("get", "scrna/pbmc.zarr", "-o", e.path("new")+"/")
	assertSameTree(t, filepath.Join(samples, "pbmc_small.zarr"), filepath.Join(e.path("new"), "pbmc.zarr"))

	// Trash, restore, permanent delete, gc.
	e.ok("delete", "experiments/batch1.csv")
	e.fails("in the trash", "get", "experiments/batch1.csv", "-o", "-")
	if out := e.ok("ls", "--trash"); !strings.Contains(out, "experiments/batch1.csv") {
		t.Fatalf("trash:\n%s", out)
	}
	e.ok("restore", "experiments/batch1.csv")
	e.ok("get", "experiments/batch1.csv@v1", "-o", "-")
	e.fails("add --yes", "delete", "--permanent", "experiments/batch1.csv")
	e.ok("delete", "--permanent", "--yes", "experiments/batch1.csv", "experiments/copy.csv")
	e.fails("no version has uid", "get", first.UID, "-o", "-")
	var gc struct {
		Deleted int  `json:"deleted_packs"`
		DryRun  bool `json:"dry_run"`
	}
	e.jsonOut(&gc, "gc", "--grace", "0s", "--settle", "1s", "--dry-run", "--format", "json")
	if !gc.DryRun || gc.Deleted == 0 {
		t.Fatalf("gc --dry-run --format json = %+v: a script cannot tell it deleted nothing", gc)
	}
	e.jsonOut(&gc, "gc", "--format", "json")
	if gc.Deleted != 0 {
		t.Fatalf("gc deleted %d objects inside the grace period", gc.Deleted)
	}
	e.jsonOut(&gc, "gc", "--grace", "0s", "--settle", "1s", "--format", "json")
	if gc.Deleted == 0 {
		t.Fatal("gc deleted nothing after a permanent delete")
	}
	// What is left is intact.
	z2 := e.path("z2")
	e.ok("get", "scrna/pbmc.zarr", "-o", z2)
	assertSameTree(t, filepath.Join(samples, "pbmc_small.zarr"), z2)
	for i, p := range fcs {
		got := e.ok("get", s[i].Key, "-o", "-")
		if want, _ := os.ReadFile(p); got != string(want) {
			t.Fatalf("%s changed after gc", s[i].Key)
		}
	}
	if out := e.ok("info"); !strings.Contains(out, "artifacts  3") {
		t.Fatalf("info after all:\n%s", out)
	}
}

func assertSameTree(t *testing.T, want, got string) {
	t.Helper()
	n := 0
	filepath.WalkDir(want, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(got, rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs: %v", rel, err)
		}
		n++
		return nil
	})
	if n == 0 {
		t.Fatal("empty tree")
	}
}

func TestBadKeys(t *testing.T) {
	e := newEnv(t)
	e.init()
	f := e.write("f.csv", []byte("x"))
	e.ok("save", f, "--key", "a/file")
	for _, tc := range []struct{ key, want string }{
		{"../up", "'.' or '..'"},
		{"a/./b", "'.' or '..'"},
		{"a//b", "empty segment"},
		{"/abs", "may not start with '/'"},
		{"trail/", "use --key-prefix trail/"},
		{"nul\x00byte", "NUL"},
		{strings.Repeat("k", 1025), "at most 1024"},
		{strings.Repeat("s", 256) + "/x", "at most 255"},
		{"x.meta", ".meta"},
		{"x@v3", "@v<digits>"},
		{"a/b.meta/c", `a folder may not be named "b.meta"`},
		{"q@v2/y", `a folder may not be named "q@v2"`},
		{"a/file/under", `"a/file" is an artifact`},
		{"a", "is a folder"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			e.fails(tc.want, "save", f, "--key", tc.key)
		})
	}
	var ls []catalog.Version
	e.jsonOut(&ls, "ls", "--format", "json")
	if len(ls) != 1 {
		t.Fatalf("a bad key left records: %+v", ls)
	}
}

// TestReservedNamesInFolders: the names the mount reserves are refused as
// folders of a key too, but a catalog that holds such keys from before still
// lists, shows, reads and deletes them, and a folder artifact's own files may
// have any name (they are no keys).
func TestReservedNamesInFolders(t *testing.T) {
	e := newEnv(t)
	e.init()
	f := e.write("f.txt", []byte("hello"))
	e.fails(`a folder may not be named "p.meta"`, "save", f, "--key-prefix", "p.meta/")

	dir := e.path("store.zarr")
	e.write("store.zarr/x.meta", []byte("m"))
	e.write("store.zarr/sub@v2/y", []byte("y"))
	e.ok("save", dir, "--key", "z/store.zarr")
	e.ok("get", "z/store.zarr", "-o", e.path("back"))
	if b, err := os.ReadFile(e.path("back/sub@v2/y")); err != nil || string(b) != "y" {
		t.Fatalf("a folder artifact's file under sub@v2/: %q, %v", b, err)
	}

	// An older catalog with such keys: made by importing an export whose
	// keys were edited, as Lamina saved them before the check.
	e.ok("save", f, "--key", "a/bmeta/c")
	e.ok("save", f, "--key", "qv2/y")
	e.ok("export-catalog", e.path("dump.jsonl"))
	dump, err := os.ReadFile(e.path("dump.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	dump = []byte(strings.NewReplacer(`"a/bmeta/c"`, `"a/b.meta/c"`, `"qv2/y"`, `"q@v2/y"`).Replace(string(dump)))
	os.WriteFile(e.path("old.jsonl"), dump, 0o644)
	e.ok("init", "--storage", e.path("storage"), "--name", "old", "--take-over")
	e.ok("--instance", "old", "import-catalog", e.path("old.jsonl"))
	ls := e.ok("--instance", "old", "ls")
	if !strings.Contains(ls, "a/b.meta/c") || !strings.Contains(ls, "q@v2/y") {
		t.Fatalf("ls of the older keys:\n%s", ls)
	}
	e.ok("--instance", "old", "ls", "--versions", "a/b.meta/c")
	e.ok("--instance", "old", "show", "a/b.meta/c@v1")
	if out := e.ok("--instance", "old", "get", "q@v2/y", "-o", "-"); out != "hello" {
		t.Fatalf("get q@v2/y: %q", out)
	}
	e.fails(`a folder may not be named "b.meta"`, "--instance", "old", "save", f, "--key", "a/b.meta/c")
	e.ok("--instance", "old", "delete", "a/b.meta/c")
	e.ok("--instance", "old", "restore", "a/b.meta/c")
	e.ok("--instance", "old", "delete", "--permanent", "--yes", "q@v2/y")
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.fails("no such file", "save", e.path("missing.csv"), "--key", "k")
	os.Symlink(e.path("nowhere"), e.path("dangling"))
	e.fails("no such file", "save", e.path("dangling"), "--key", "k")
	fifo := e.path("fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	e.fails("not a regular file", "save", fifo, "--key", "k")
	// One bad path among good ones: nothing is recorded.
	good := e.write("good.csv", []byte("g"))
	e.fails("no such file", "save", good, e.path("missing.csv"), "--key-prefix", "many/")
	e.fails("no artifact has key", "show", "many/good.csv")
	e.fails("no version has uid", "show", "ZZZZZZZZZZZZ")
	e.fails("no artifact has key", "get", "nothing/here.csv")
	e.ok("save", good)
	e.fails("has no version 9", "get", "good.csv@v9", "-o", "-")
	e.fails("unknown --format", "ls", "--format", "xml")
	e.fails("--key names one artifact", "save", good, good, "--key", "k")
	e.fails("already exists", "init", "--storage", e.path("s2"), "--name", "test")
	e.fails("bad instance name", "init", "--storage", e.path("s2"), "--name", "../x")
	e.fails(`no instance named "nope"`, "--instance", "nope", "ls")
}

func TestAmbiguousPrefix(t *testing.T) {
	e := newEnv(t)
	e.init()
	var s []savedRow
	e.jsonOut(&s, "save", e.write("a", []byte("1")), "--key", "k", "--format", "json")
	e.ok("save", e.write("a", []byte("2")), "--key", "k")
	err := e.fails("ambiguous", "show", s[0].UID[:17])
	if !strings.Contains(err.Error(), "k@v1") || !strings.Contains(err.Error(), "k@v2") {
		t.Fatalf("candidates not listed: %v", err)
	}
}

func TestRevises(t *testing.T) {
	e := newEnv(t)
	e.init()
	var s []savedRow
	e.jsonOut(&s, "save", e.write("a", []byte("1")), "--key", "k", "--format", "json")
	e.ok("save", e.write("b", []byte("2")), "--key", "k", "--revises", s[0].UID)
	e.ok("save", e.write("c", []byte("3")), "--key", "other")
	e.fails("names a version of", "save", e.write("d", []byte("4")), "--key", "other", "--revises", s[0].UID)
	e.fails("--revises is empty", "save", e.write("d", []byte("4")), "--key", "k", "--revises", "")

	// The new version records what it revises: in its sidecar (show
	// --format json prints that document) and in show.
	var meta struct {
		Revises *string `json:"revises"`
	}
	e.jsonOut(&meta, "show", "k@v2", "--format", "json")
	if meta.Revises == nil || *meta.Revises != s[0].UID {
		t.Fatalf("sidecar of k@v2: revises %v, want %s", meta.Revises, s[0].UID)
	}
	if out := e.ok("show", "k@v2"); !strings.Contains(out, "revises         k@v1  uid "+s[0].UID) {
		t.Fatalf("show k@v2 does not name k@v1 as what it revises:\n%s", out)
	}
	// A version saved without --revises has no such field.
	meta.Revises = nil
	e.jsonOut(&meta, "show", "k@v1", "--format", "json")
	if meta.Revises != nil {
		t.Fatalf("sidecar of k@v1: revises %q, want none", *meta.Revises)
	}
	if out := e.ok("show", "k@v1"); strings.Contains(out, "revises") {
		t.Fatalf("show k@v1 names a revised version:\n%s", out)
	}
}

func randomFile(t *testing.T, e *env, name string, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return e.write(name, b)
}

// Two processes saving to one instance at once: both land, in some order.
func TestConcurrentSaves(t *testing.T) {
	e := newEnv(t)
	e.init()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	outs := make([][]byte, 4)
	for i := range errs {
		p := randomFile(t, e, fmt.Sprintf("f%d", i), 3<<20)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			outs[i], errs[i] = e.child("save", p, "--key", "same/key").CombinedOutput()
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("save %d: %v\n%s", i, err, outs[i])
		}
	}
	var vs []catalog.Version
	e.jsonOut(&vs, "ls", "--versions", "same/key", "--format", "json")
	if len(vs) != 4 {
		t.Fatalf("%d versions, want 4", len(vs))
	}
	for i, v := range vs {
		if v.Version != i+1 {
			t.Fatalf("versions %+v", vs)
		}
		e.ok("get", v.UID, "-o", e.path(fmt.Sprintf("got%d", i)))
	}
}

// A save killed with SIGKILL at any moment leaves a consistent catalog in
// which every earlier version reads back.
func TestSaveKilled(t *testing.T) {
	e := newEnv(t)
	e.init()
	first := e.write("first.csv", []byte("the first version\n"))
	e.ok("save", first, "--key", "data/big.bin")
	big := randomFile(t, e, "big.bin", 96<<20)
	for _, delay := range []time.Duration{20 * time.Millisecond, 80 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		cmd := e.child("save", big, "--key", "data/big.bin")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Kill()
		cmd.Wait()
		var vs []catalog.Version
		e.jsonOut(&vs, "ls", "--versions", "data/big.bin", "--format", "json")
		if len(vs) < 1 || len(vs) > 2 || vs[0].Version != 1 {
			t.Fatalf("after kill at %s: versions %+v", delay, vs)
		}
		if got := e.ok("get", "data/big.bin@v1", "-o", "-"); got != "the first version\n" {
			t.Fatalf("after kill at %s: v1 reads %q", delay, got)
		}
		if len(vs) == 2 { // the kill came after the commit: the version is whole
			out := e.path("check.bin")
			os.Remove(out)
			e.ok("get", "data/big.bin@v2", "-o", out)
			a, _ := os.ReadFile(big)
			b, _ := os.ReadFile(out)
			if !bytes.Equal(a, b) {
				t.Fatal("committed version differs from its file")
			}
			break
		}
	}
	e.ok("save", big, "--key", "data/big.bin")
	e.ok("gc", "--grace", "0s", "--settle", "0s")
	e.ok("get", "data/big.bin", "-o", e.path("final.bin"))
}

// A full disk during a save: a clear message and nothing half-registered.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("LAMINA_ALLOW_SKIP") == "" {
			t.Fatal("this test mounts a small tmpfs and needs root (set LAMINA_ALLOW_SKIP=1 to skip)")
		}
		t.Skip("needs root to mount a tmpfs")
	}
	e := newEnv(t)
	small := e.path("small")
	os.MkdirAll(small, 0o755)
	if err := syscall.Mount("tmpfs", small, "tmpfs", 0, "size=2m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(small, syscall.MNT_DETACH) })
	e.ok("init", "--storage", small, "--name", "tiny")
	ok := e.write("ok.csv", []byte("fits\n"))
	e.ok("save", ok, "--key", "ok.csv")
	big := randomFile(t, e, "big.bin", 8<<20)
	e.fails("disk is full", "save", big, "--key", "big.bin")
	e.fails("no artifact has key", "show", "big.bin")
	var ls []catalog.Version
	e.jsonOut(&ls, "ls", "--format", "json")
	if len(ls) != 1 || ls[0].Key != "ok.csv" {
		t.Fatalf("after ENOSPC: %+v", ls)
	}
	if got := e.ok("get", "ok.csv", "-o", "-"); got != "fits\n" {
		t.Fatalf("earlier version reads %q", got)
	}
	// gc frees the orphaned chunks; then a small save works again.
	e.ok("gc", "--grace", "0s", "--settle", "0s")
	e.ok("save", e.write("ok2.csv", []byte("fits too\n")), "--key", "ok2.csv")
}

func TestJSONOutputIsPure(t *testing.T) {
	e := newEnv(t)
	e.init()
	p := randomFile(t, e, "r.bin", 1<<20)
	out, stderr, err := e.run("save", p, "--key", "r.bin", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v []map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("stdout is not pure JSON: %v\n%s", err, out)
	}
	if stderr != "" {
		t.Fatalf("stderr not empty: %q", stderr)
	}
}

func TestVersionFlag(t *testing.T) {
	e := newEnv(t)
	if out := e.ok("--version"); !strings.Contains(out, version) {
		t.Fatalf("--version: %q", out)
	}
}

// A file its suffix misnames (a truncated h5ad, a text file called
// .parquet) is saved as a plain file: no otype, and the save says why;
// a readable one gets its otype as before.
func TestSaveMisnamedFile(t *testing.T) {
	e := newEnv(t)
	e.ok("init", "--storage", e.path("storage"), "--name", "lab")
	good, err := os.ReadFile(filepath.Join(samples, "pbmc_small.h5ad"))
	if err != nil {
		t.Fatal(err)
	}
	bad := e.path("cut.h5ad")
	os.WriteFile(bad, good[:len(good)/3], 0o644)
	out, errs, err := e.run("save", bad, "--key", "x/cut.h5ad")
	if err != nil || !strings.Contains(errs, "not a readable h5ad") || !strings.Contains(out, "saved x/cut.h5ad@v1") {
		t.Fatalf("save of a truncated h5ad: %v\nstdout: %s\nstderr: %s", err, out, errs)
	}
	var show struct {
		OType string `json:"otype"`
	}
	e.jsonOut(&show, "show", "x/cut.h5ad", "--format", "json")
	if show.OType != "" {
		t.Errorf("a truncated h5ad got otype %q", show.OType)
	}
	var saved []struct {
		Note string `json:"note"`
	}
	fake := e.path("fake.parquet")
	os.WriteFile(fake, []byte("a,b\n1,2\n"), 0o644)
	e.jsonOut(&saved, "save", fake, "--key", "x/fake.parquet", "--format", "json")
	if len(saved) != 1 || !strings.Contains(saved[0].Note, "not a readable parquet") {
		t.Errorf("--format json of a misnamed file: %+v", saved)
	}
	// An empty CSV has no header: no table, as an empty h5ad is none.
	empty := e.write("empty.csv", nil)
	_, errs, err = e.run("save", empty, "--key", "x/empty.csv")
	if err != nil || !strings.Contains(errs, "not a readable csv") || !strings.Contains(errs, "the file is empty") {
		t.Fatalf("save of an empty csv: %v\nstderr: %s", err, errs)
	}
	if e.jsonOut(&show, "show", "x/empty.csv", "--format", "json"); show.OType != "" {
		t.Errorf("an empty csv got otype %q", show.OType)
	}
	good2 := e.path("ok.h5ad")
	os.WriteFile(good2, good, 0o644)
	e.ok("save", good2, "--key", "x/ok.h5ad")
	if e.jsonOut(&show, "show", "x/ok.h5ad", "--format", "json"); show.OType != "AnnData" {
		t.Errorf("a readable h5ad got otype %q", show.OType)
	}
}

// The key names the suffix and the format the content is read as, not the
// local file's name: a CSV saved as y.h5ad or an h5ad saved as x.csv gets
// no otype (the key's suffix misnames it), a key without a suffix has none,
// and --where suffix= finds only what the keys say.
func TestSuffixAndOTypeFromKey(t *testing.T) {
	e := newEnv(t)
	e.init()
	csv := e.write("counts.csv", []byte("gene,count\nA,1\nB,2\n"))
	type shown struct {
		Suffix string `json:"suffix"`
		OType  string `json:"otype"`
		NObs   int64  `json:"n_observations"`
	}
	for _, c := range []struct{ path, key, suffix, otype, note string }{
		{csv, "sfx/y.h5ad", ".h5ad", "", "not a readable h5ad"},
		{filepath.Join(samples, "pbmc_small.h5ad"), "sfx/x.csv", ".csv", "", "not a readable csv"},
		{csv, "sfx/noext", "", "", ""},
		{filepath.Join(samples, "pbmc_small.h5ad"), "sfx/noext2", "", "", ""},
		{csv, "sfx/ok.tsv.csv", ".csv", "DataFrame", ""},
		{filepath.Join(samples, "pbmc_small.h5ad"), "sfx/ok.h5ad", ".h5ad", "AnnData", ""},
	} {
		_, errs, err := e.run("save", c.path, "--key", c.key)
		if err != nil || !strings.Contains(errs, c.note) || (c.note == "" && errs != "") {
			t.Errorf("save %s: %v\nstderr: %s", c.key, err, errs)
		}
		var show shown
		e.jsonOut(&show, "show", c.key, "--format", "json")
		if show.Suffix != c.suffix || show.OType != c.otype || (c.otype == "" && show.NObs != 0) {
			t.Errorf("%s: suffix %q otype %q n_observations %d, want %q %q", c.key, show.Suffix, show.OType, show.NObs, c.suffix, c.otype)
		}
	}
	if out := e.ok("ls", "--where", "suffix=.csv", "--format", "json"); strings.Contains(out, "noext") || !strings.Contains(out, "sfx/x.csv") {
		t.Errorf("--where suffix=.csv: %s", out)
	}
}

// TestDamagedCatalog: a damaged catalog file is a clear error for every
// command, not a panic or a SIGBUS of bbolt's, and an empty one is not a
// new, empty catalog (storage still holds the data).
func TestDamagedCatalog(t *testing.T) {
	e := newEnv(t)
	e.init()
	var files []string
	for i := range 300 {
		files = append(files, e.write(fmt.Sprintf("in/f%03d.csv", i), fmt.Appendf(nil, "a,b\n%d,2\n", i)))
	}
	e.ok(append([]string{"save", "--key-prefix", "k/"}, files...)...)
	db := e.path("data/lamina/test/catalog.db")
	good, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		damage     func() []byte
	}{
		{"truncated", "catalog.db is truncated (20000 bytes; its header says ", func() []byte { return good[:20000] }},
		{"empty", "catalog.db is empty (0 bytes)", func() []byte { return nil }},
		{"garbled", "cannot be read", func() []byte {
			b := slices.Clone(good)
			for pg := 2 * 4096; pg < len(b); pg += 4096 {
				if b[pg+8] != 0x10 { // all pages but the metas and the freelist
					copy(b[pg:pg+4096], bytes.Repeat([]byte{0xff}, 4096))
				}
			}
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(db, tc.damage(), 0o600)
			for _, args := range [][]string{{"ls"}, {"info"}, {"save", files[0], "--key", "new.csv"}} {
				err := e.fails(tc.want, args...)
				if msg := explain(err); !strings.Contains(msg, "the catalog file is damaged") || !strings.Contains(msg, "restore it from a backup") {
					t.Errorf("lamina %s: %s", args[0], msg)
				}
			}
			os.WriteFile(db, good, 0o600)
			if out := e.ok("ls", "k/"); strings.Count(out, "k/f") != 300 {
				t.Fatalf("ls after restoring the file:\n%s", out)
			}
		})
	}
}

// TestUnreadableZarrStore: a .zarr store whose root .zattrs is empty (or
// not JSON) cannot say whether it is an AnnData: curate says what is wrong
// with it, and save warns and stores it without an otype, as it does an
// unreadable h5ad.
func TestUnreadableZarrStore(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("feature", "create", "cell_type", "--dtype", "str")
	e.ok("schema", "create", "s", "--feature", "cell_type")
	store := e.path("z.zarr")
	if err := os.CopyFS(store, os.DirFS(filepath.Join(samples, "pbmc_small.zarr"))); err != nil {
		t.Fatal(err)
	}
	for name, zattrs := range map[string]string{"empty": "", "NotJSON": "{not json"} {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(filepath.Join(store, ".zattrs"), []byte(zattrs), 0o644)
			want := "z.zarr/.zattrs is empty"
			if zattrs != "" {
				want = "z.zarr/.zattrs is not a JSON object"
			}
			err := e.fails(want, "curate", store, "--schema", "s")
			if exitCode(err) != 2 {
				t.Errorf("curate exit %d", exitCode(err))
			}
			key := "z/" + name + ".zarr"
			_, errs, err := e.run("save", store, "--key", key)
			if err != nil || !strings.Contains(errs, "not a readable zarr store") || !strings.Contains(errs, want) {
				t.Fatalf("save: %v\nstderr: %s", err, errs)
			}
			var show struct {
				OType string `json:"otype"`
			}
			if e.jsonOut(&show, "show", key, "--format", "json"); show.OType != "" {
				t.Errorf("otype %q", show.OType)
			}
		})
	}
}

// TestSaveReportsStoredBytes: what a save added to storage is compressed
// and framed, so for a small file it is more than the file; the line says
// what the figure is rather than "newly stored", which read as a share of
// the file.
func TestSaveReportsStoredBytes(t *testing.T) {
	e := newEnv(t)
	e.init()
	f := e.write("small.txt", []byte("twenty-nine bytes of content\n"))
	out := e.ok("save", f, "--key", "small.txt")
	if !regexp.MustCompile(`saved small.txt@v1  uid \w+  29 B, \d+ B written to storage\n`).MatchString(out) || strings.Contains(out, "newly") {
		t.Fatalf("save said %q", out)
	}
}

// A saved file keeps its permission bits, as cp -p does: a script saved
// 0750 ran from the mount as 0644 (refused now that x bits count) and came
// back 0644 from get.
func TestSaveKeepsMode(t *testing.T) {
	e := newEnv(t)
	e.init()
	p := e.write("run.sh", []byte("#!/bin/sh\necho hi\n"))
	if err := os.Chmod(p, 0o750); err != nil {
		t.Fatal(err)
	}
	e.ok("save", p, "--key", "bin/run.sh")
	var v struct{ Mode *uint32 }
	e.jsonOut(&v, "show", "bin/run.sh", "--format", "json")
	if v.Mode == nil || *v.Mode != 0o750 {
		t.Fatalf("mode of the saved script: %v, want 0750", v.Mode)
	}
	out := e.path("back.sh")
	e.ok("get", "bin/run.sh", "-o", out)
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o750 {
		t.Fatalf("get: %v, %v; want mode 0750", fi.Mode(), err)
	}
}

// get --force replaces a file with a file artifact and a folder with a
// folder artifact; a folder where a file would go (or the reverse) is
// refused with a message that says what to do. No failure leaves a partial
// file behind or names one.
func TestGetForce(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("c.csv", []byte("gene,count\nA,1\n")), "--key", "experiments/batch1.csv")
	e.write("tree/a.txt", []byte("a"))
	e.ok("save", e.path("tree"), "--key", "f/tree")
	g := e.path("g")
	os.MkdirAll(filepath.Join(g, "batch1.csv"), 0o755)
	os.WriteFile(filepath.Join(g, "batch1.csv", "notes.txt"), []byte("mine"), 0o644)
	os.WriteFile(filepath.Join(g, "tree"), []byte("mine"), 0o644)
	noPartial := func(err error) {
		t.Helper()
		if err != nil && strings.Contains(err.Error(), "partial") {
			t.Errorf("the error names the partial file: %v", err)
		}
		ents, _ := os.ReadDir(g)
		for _, ent := range ents {
			if strings.Contains(ent.Name(), "partial") {
				t.Errorf("left behind: %s", ent.Name())
			}
		}
	}
	t.Chdir(g) // get writes the key's name in the current folder
	noPartial(e.fails("is a folder", "get", "experiments/batch1.csv"))
	noPartial(e.fails("-o batch1.csv/ writes into it", "get", "experiments/batch1.csv", "--force"))
	if b, _ := os.ReadFile(filepath.Join(g, "batch1.csv", "notes.txt")); string(b) != "mine" {
		t.Errorf("the folder was changed: %q", b)
	}
	noPartial(e.fails("is a file", "get", "f/tree", "--force"))
	noPartial(e.fails("does not exist", "get", "experiments/batch1.csv", "-o", filepath.Join(g, "nonexist/sub/x.csv")))
	// a folder that cannot be written into: the error names the target
	ro := filepath.Join(g, "ro")
	os.Mkdir(ro, 0o755)
	os.WriteFile(filepath.Join(ro, "x.csv"), []byte("old"), 0o644)
	os.Mkdir(filepath.Join(ro, "x.csv"+".lamina-partial"), 0o755) // the partial file cannot be created
	err := e.fails("x.csv", "get", "experiments/batch1.csv", "-o", filepath.Join(ro, "x.csv"), "--force")
	if strings.Contains(err.Error(), "partial") {
		t.Errorf("the error names the partial file: %v", err)
	}
	// what --force does replace
	os.WriteFile(filepath.Join(g, "f.csv"), []byte("old"), 0o644)
	e.ok("get", "experiments/batch1.csv", "-o", filepath.Join(g, "f.csv"), "--force")
	os.MkdirAll(filepath.Join(g, "t2", "tree", "old"), 0o755)
	e.ok("get", "f/tree", "-o", filepath.Join(g, "t2"), "--force") // into t2: t2/tree
	if _, err := os.Stat(filepath.Join(g, "t2", "tree", "a.txt")); err != nil {
		t.Errorf("the folder was not replaced: %v", err)
	}
	if _, err := os.Stat(filepath.Join(g, "t2", "tree", "old")); err == nil {
		t.Errorf("the folder was merged, not replaced")
	}
	noPartial(nil)
}

// Files named h and help are saved: urfave/cli's help subcommand (alias
// h) of every command printed save's help instead, exit 0, nothing saved.
// -h still shows it.
func TestSaveFilesNamedHelp(t *testing.T) {
	e := newEnv(t)
	e.ok("init", "--storage", e.path("storage"), "--name", "lab")
	e.write("h", []byte("h\n"))
	e.write("help", []byte("help\n"))
	t.Chdir(e.dir)
	e.ok("save", "--key", "s/h", "h")
	e.ok("save", "help")
	if out := e.ok("ls", "--format", "csv"); !strings.Contains(out, "s/h,") || !strings.Contains(out, "\nhelp,") {
		t.Errorf("h and help not saved:\n%s", out)
	}
	if out := e.ok("save", "-h"); !strings.Contains(out, "lamina save") {
		t.Errorf("save -h: %q", out)
	}
}

// save --mode and --mtime set the new versions' permission bits and
// mtime (what the staged bytes of a taken-over mount keep when saved into
// the new owner); bad values are usage errors, --mode of a folder is
// refused.
func TestSaveModeAndMtime(t *testing.T) {
	e := newEnv(t)
	e.init()
	p := e.write("s.txt", []byte("staged\n"))
	os.Chmod(p, 0o600)
	e.ok("save", p, "--key", "s.txt", "--mode", "0755", "--mtime", "2026-01-02T15:04:05.5Z")
	var v struct {
		Mode  *uint32
		Mtime time.Time
	}
	e.jsonOut(&v, "show", "s.txt", "--format", "json")
	if v.Mode == nil || *v.Mode != 0o755 || !v.Mtime.Equal(time.Date(2026, 1, 2, 15, 4, 5, 5e8, time.UTC)) {
		t.Errorf("saved with --mode 0755 --mtime: mode %v, mtime %v", v.Mode, v.Mtime)
	}
	for _, bad := range [][]string{{"--mode", "rw"}, {"--mode", "17777"}, {"--mtime", "yesterday"}} {
		if err := e.fails(bad[0], append([]string{"save", p, "--key", "t.txt"}, bad...)...); codeOf(err) != 2 {
			t.Errorf("save %v: exit %d", bad, codeOf(err))
		}
	}
	e.write("dir/a.txt", []byte("a\n"))
	e.fails("--mode applies to files", "save", e.path("dir"), "--key", "d", "--mode", "0644")
}

// TestSaveClearsDescription: a save without -d keeps the latest version's
// description; an empty -d gives the new version none (it could not be
// cleared: empty was taken as not given), and none is carried on from
// there. curate --key with an empty -d the same.
func TestSaveClearsDescription(t *testing.T) {
	e := newEnv(t)
	e.init()
	desc := func(key string) string {
		var v struct {
			Version     int    `json:"version"`
			Description string `json:"description"`
		}
		e.jsonOut(&v, "show", key, "--format", "json")
		return fmt.Sprintf("v%d %q", v.Version, v.Description)
	}
	e.ok("save", e.write("a", []byte("1\n")), "--key", "k.csv", "-d", "batch 1")
	e.ok("save", e.write("a", []byte("2\n")), "--key", "k.csv")
	if got := desc("k.csv"); got != `v2 "batch 1"` {
		t.Fatalf("saved without -d: %s", got)
	}
	e.ok("save", e.write("a", []byte("3\n")), "--key", "k.csv", "--description", "")
	if got := desc("k.csv"); got != `v3 ""` {
		t.Fatalf("saved with --description '': %s", got)
	}
	e.ok("save", e.write("a", []byte("4\n")), "--key", "k.csv")
	if got := desc("k.csv"); got != `v4 ""` {
		t.Fatalf("saved without -d after it was cleared: %s", got)
	}
	if got := desc("k.csv@v1"); got != `v1 "batch 1"` {
		t.Fatalf("v1: %s", got)
	}
	e.ok("feature", "create", "n", "--dtype", "int")
	e.ok("schema", "create", "s", "--feature", "n")
	e.ok("curate", e.write("t.csv", []byte("n\n1\n")), "--schema", "s", "--key", "t.csv", "-d", "table")
	e.ok("curate", e.write("t.csv", []byte("n\n2\n")), "--schema", "s", "--key", "t.csv", "-d", "")
	if got := desc("t.csv"); got != `v2 ""` {
		t.Fatalf("curate --key -d '': %s", got)
	}
}
