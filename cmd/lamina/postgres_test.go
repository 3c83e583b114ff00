package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
	"github.com/lamina-bio/lamina/storage"
	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// workstation is one user's machine: its own HOME, XDG folders (settings,
// data, cache, runtime) and, once mounted, its own daemon.
func workstation(t *testing.T, name string, srv s3test.Server) *mntEnv {
	return workstationEnv(t, name, "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey)
}

// team is a team's instance "lab" on a new bucket of a real S3 server and a
// PostgreSQL catalog (its URL db): ana made it, ben connected to it.
func team(t *testing.T) (srv s3test.Server, bucket, db string, ana, ben *mntEnv) {
	t.Helper()
	srv = s3test.Real(t)
	bucket = srv.CreateBucket(t)
	db = pgtest.URL(t)
	ana, ben = workstation(t, "ana", srv), workstation(t, "ben", srv)
	ana.ok("init", "--storage", "s3://"+bucket+"/lab", "--endpoint", srv.Endpoint, "--region", "us-east-1", "--path-style",
		"--db", db, "--name", "lab")
	ben.ok("connect", "lab", "--db", db)
	return srv, bucket, db, ana, ben
}

// workstationEnv is workstation with more environment variables.
func workstationEnv(t *testing.T, name string, env ...string) *mntEnv {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatal("no /dev/fuse: the mount tests need FUSE")
	}
	dir := filepath.Join(t.TempDir(), name)
	e := &mntEnv{t: t, dir: dir, bin: mntBinary(t)}
	e.env = append(os.Environ(), "HOME="+dir+"/home", "XDG_CONFIG_HOME="+dir+"/cfg", "XDG_DATA_HOME="+dir+"/data",
		"XDG_CACHE_HOME="+dir+"/cache", "XDG_RUNTIME_DIR="+dir+"/run", "LAMINA_INSTANCE=")
	e.env = append(e.env, env...)
	return e
}

// waitFor polls until read returns want, and says how long it took.
func waitFor(t *testing.T, what string, limit time.Duration, read func() (string, error), want string) time.Duration {
	t.Helper()
	return waitForOr(t, what, limit, read, want, nil)
}

// waitForOr is waitFor that adds what diag says to a failure.
func waitForOr(t *testing.T, what string, limit time.Duration, read func() (string, error), want string, diag func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got, err := read()
		if err == nil && got == want {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			more := ""
			if diag != nil {
				more = "\n" + diag()
			}
			t.Fatalf("%s: after %s got %q, %v; want %q%s", what, limit, got, err, want, more)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readString(p string) func() (string, error) {
	return func() (string, error) { b, err := os.ReadFile(p); return string(b), err }
}

// catalogGet is what lamina get reads of key: the committed version, where
// the mount also shows a file whose commit is still to be retried.
func catalogGet(e interface {
	run(...string) (string, string, error)
}, key string) func() (string, error) {
	return func() (string, error) { out, _, err := e.run("get", key, "-o", "-"); return out, err }
}

// Two workstations (two mounts, daemons, caches and XDG folders) on one
// S3 bucket and one PostgreSQL catalog, writing the same keys.
func TestTwoWorkstations(t *testing.T) {
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)
	db := pgtest.URL(t)
	a, b := workstation(t, "ana", srv), workstation(t, "ben", srv)

	out := a.ok("init", "--storage", "s3://"+bucket+"/lab", "--endpoint", srv.Endpoint, "--region", "us-east-1", "--path-style",
		"--db", db, "--name", "lab")
	if !strings.Contains(out, "catalog: postgresql://") {
		t.Fatalf("init: %s", out)
	}
	b.fails("holds instance \"lab\", not \"other\"", "connect", "other", "--db", db)
	b.ok("connect", "lab", "--db", db)
	info := b.ok("info")
	if !strings.Contains(info, "s3://"+bucket+"/lab") || !strings.Contains(info, srv.Endpoint) || !strings.Contains(info, "PostgreSQL") {
		t.Fatalf("connected settings: %s", info)
	}
	// No password anywhere in the settings.
	for _, e := range []*mntEnv{a, b} {
		raw, err := os.ReadFile(filepath.Join(e.dir, "cfg/lamina/instances/lab.json"))
		if err != nil || strings.Contains(string(raw), ":"+"@") {
			t.Fatalf("settings: %s %v", raw, err)
		}
	}

	ma, mb := filepath.Join(a.dir, "mnt"), filepath.Join(b.dir, "mnt")
	a.mount(ma)
	b.mount(mb)

	// Both write the same key and keys of their own, at once.
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, 4*n+4)
	for _, m := range []struct{ dir, who string }{{ma, "ana"}, {mb, "ben"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, d := range []string{"shared", m.who} {
				if err := os.MkdirAll(filepath.Join(m.dir, d), 0o755); err != nil {
					errs <- fmt.Errorf("%s: %w", m.who, err)
				}
			}
			for i := 0; i < n; i++ {
				if err := os.WriteFile(filepath.Join(m.dir, "shared/x.txt"), fmt.Appendf(nil, "%s %d\n", m.who, i), 0o644); err != nil {
					errs <- err
				}
				if err := os.WriteFile(filepath.Join(m.dir, m.who, fmt.Sprintf("f%d.txt", i)), []byte(m.who), 0o644); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ctx := context.Background()
	cat, err := postgres.Open(ctx, db, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	// Every version landed, numbered 1…2n without a gap or a collision.
	vs, err := cat.Versions(ctx, "shared/x.txt", false)
	if err != nil || len(vs) != 2*n {
		t.Fatalf("shared/x.txt has %d versions, want %d: %v", len(vs), 2*n, err)
	}
	by := map[string]int{}
	for i, v := range vs {
		if v.Version != i+1 {
			t.Fatalf("version %d numbered %d", i+1, v.Version)
		}
		by[v.CreatedBy]++
	}
	// Both "workstations" run as this machine's user here.
	if u, err := user.Current(); err != nil || by[u.Username] != 2*n {
		t.Fatalf("created_by: %v, want the workstation user", by)
	}
	for _, who := range []string{"ana", "ben"} {
		for i := 0; i < n; i++ {
			for _, m := range []string{ma, mb} {
				waitFor(t, "other's file", 30*time.Second, readString(filepath.Join(m, who, fmt.Sprintf("f%d.txt", i))), who)
			}
		}
	}

	// Each sees the other's new versions, though its kernel had the old
	// ones cached (within a second on an idle machine: the time is logged;
	// the bound is for a loaded one).
	latest := readString(filepath.Join(mb, "shared/x.txt"))
	last, _ := latest()
	for i, w := range []struct{ from, to string }{{ma, mb}, {mb, ma}, {ma, mb}} {
		p := filepath.Join(w.to, "shared/x.txt")
		if got, _ := readString(p)(); got != last {
			t.Fatalf("before write %d: %q, want %q", i, got, last)
		}
		last = fmt.Sprintf("round %d\n", i)
		if err := os.WriteFile(filepath.Join(w.from, "shared/x.txt"), []byte(last), 0o644); err != nil {
			t.Fatal(err)
		}
		d := waitFor(t, "new version from the other mount", 30*time.Second, readString(p), last)
		t.Logf("round %d: the other mount saw the new version after %s", i, d.Round(time.Millisecond))
		// A new key too (a negative lookup the kernel cached).
		nk := filepath.Join(w.to, fmt.Sprintf("shared/new%d.txt", i))
		if _, err := os.Stat(nk); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("new key before: %v", err)
		}
		os.WriteFile(filepath.Join(w.from, fmt.Sprintf("shared/new%d.txt", i)), []byte("n"), 0o644)
		waitFor(t, "new key from the other mount", 30*time.Second, readString(nk), "n")
	}
	// The CLI of one workstation sees the mount of the other's work.
	if out := b.ok("ls", "ana/"); !strings.Contains(out, "f0.txt") {
		t.Fatalf("ls: %s", out)
	}
}

// A role that may only read gets a read-only mount: EROFS on writes.
func TestReadOnlyRoleMount(t *testing.T) {
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)
	db := pgtest.URL(t)
	a := workstation(t, "ana", srv)
	a.ok("init", "--storage", "s3://"+bucket+"/lab", "--endpoint", srv.Endpoint, "--region", "us-east-1", "--path-style",
		"--db", db, "--name", "lab")
	a.ok("save", a.file("x.txt", []byte("x")), "--key", "x.txt")
	schema := db[strings.Index(db, "search_path=")+len("search_path="):]
	role := "ro_" + schema
	pgtest.Exec(t, db, `CREATE ROLE `+role+` NOLOGIN; GRANT USAGE ON SCHEMA `+schema+` TO `+role+
		`; GRANT SELECT ON ALL TABLES IN SCHEMA `+schema+` TO `+role)
	t.Cleanup(func() { pgtest.Exec(t, pgtest.Base(t), `DROP OWNED BY `+role+`; DROP ROLE `+role) })
	r := workstation(t, "rita", srv)
	r.ok("connect", "lab", "--db", pgtest.WithParam(db, "role", role))
	m := filepath.Join(r.dir, "mnt")
	r.mount(m)
	waitFor(t, "read", 30*time.Second, readString(filepath.Join(m, "x.txt")), "x")
	err := os.WriteFile(filepath.Join(m, "y.txt"), []byte("y"), 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write on a read-only mount: %v", err)
	}
	if st := r.ok("status"); !strings.Contains(st, "read-only") {
		t.Errorf("status of a read-only mount does not say so:\n%s", st)
	}
	// Refused before a byte is uploaded: nothing new in the bucket.
	objects := func() int {
		t.Helper()
		b, err := s3b.Open(context.Background(), srv.Config(bucket))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		if err := b.List(context.Background(), "", func(storage.Info) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := objects()
	r.fails("read-only", "save", r.file("z.txt", make([]byte, 3<<20)), "--key", "z.txt")
	r.fails("cannot gc", "gc", "--grace", "0s", "--settle", "0s") // nor delete the team's data
	r.ok("gc", "--dry-run")                                       // but may count what gc would
	if after := objects(); after != before {
		t.Errorf("a refused save stored %d objects in the bucket", after-before)
	}
}

// export-catalog / import-catalog move an instance from bbolt to
// PostgreSQL and back (the records themselves: catalog/postgres tests).
func TestExportImportCatalog(t *testing.T) {
	e := newEnv(t)
	db := pgtest.URL(t)
	e.ok("init", "--storage", e.path("store"), "--name", "local")
	e.ok("save", e.write("a.csv", []byte("a,b\n1,2\n")), "--key", "exp/a.csv")
	e.ok("save", e.write("a.csv", []byte("a,b\n1,3\n")), "--key", "exp/a.csv")
	e.ok("save", e.write("b.txt", []byte("b")), "--key", "b.txt")
	e.ok("delete", "b.txt")
	e.ok("export-catalog", e.path("dump.jsonl"))
	e.fails("exists", "export-catalog", e.path("dump.jsonl"))

	// The storage holds instance local: a new instance there takes it over.
	e.fails("holds instance", "init", "--storage", e.path("store"), "--name", "team", "--db", db)
	e.ok("init", "--storage", e.path("store"), "--name", "team", "--db", db, "--take-over")
	out := e.ok("--instance", "team", "import-catalog", e.path("dump.jsonl"))
	if !strings.Contains(out, "1 artifact, 2 versions (+1 in the trash)") {
		t.Fatalf("import: %s", out)
	}
	e.fails("not empty", "--instance", "team", "import-catalog", e.path("dump.jsonl"))
	if a, b := e.ok("--instance", "local", "show", "exp/a.csv@v1"), e.ok("--instance", "team", "show", "exp/a.csv@v1"); a != b {
		t.Fatalf("show differs:\n%s\n%s", a, b)
	}
	// local lost its storage: it may not write to it or collect it (its gc
	// would delete what team saves); reading its catalog still works.
	e.fails("took", "--instance", "local", "gc", "--grace", "0s", "--settle", "0s")
	e.fails("took", "--instance", "local", "save", e.write("c.txt", []byte("c")), "--key", "c.txt")
	e.ok("--instance", "local", "ls")
	e.ok("--instance", "team", "gc", "--grace", "0s", "--settle", "0s")
	e.ok("--instance", "team", "export-catalog", e.path("back.jsonl"))
	e.ok("init", "--storage", e.path("store"), "--name", "again", "--take-over")
	e.ok("--instance", "again", "import-catalog", e.path("back.jsonl"))
	e.ok("--instance", "again", "export-catalog", e.path("again.jsonl"))
	x, _ := os.ReadFile(e.path("dump.jsonl"))
	y, _ := os.ReadFile(e.path("again.jsonl"))
	if string(x) != string(y) {
		t.Fatalf("bbolt → PostgreSQL → bbolt changed the export:\n%s\n----\n%s", x, y)
	}
}

// connect of an instance connected already (audit c7): to the same
// database it changes nothing and succeeds; at another URL it takes the
// new one and says so; an instance of that name that is another one is
// refused with a way that exists (--name). Before, each said "already
// exists …; pick another --name", a flag connect did not have.
func TestConnectAgain(t *testing.T) {
	db := pgtest.URL(t)
	a := workstationEnv(t, "ana")
	a.ok("init", "--storage", filepath.Join(a.dir, "store"), "--name", "lab", "--db", db)
	a.ok("save", a.file("x.txt", []byte("x")), "--key", "x.txt")
	b := workstationEnv(t, "ben")
	b.ok("connect", "lab", "--db", db)
	if out := b.ok("connect", "lab", "--db", db); !strings.Contains(out, "connected already") || !strings.Contains(out, "nothing changed") {
		t.Errorf("connect again: %s", out)
	}
	moved := pgtest.WithParam(db, "application_name", "lamina_ben")
	if out := b.ok("connect", "lab", "--db", moved); !strings.Contains(out, "its catalog is now "+moved) {
		t.Errorf("connect again at another URL: %s", out)
	}
	if info := b.ok("info"); !strings.Contains(info, "application_name=lamina_ben") {
		t.Errorf("settings after the URL changed: %s", info)
	}
	if out := b.ok("ls"); !strings.Contains(out, "x.txt") {
		t.Errorf("ls after connecting again: %s", out)
	}
	// Carl has an instance of his own named lab.
	c := workstationEnv(t, "carl")
	c.ok("init", "--storage", filepath.Join(c.dir, "own"), "--name", "lab")
	_, errs, err := c.run("connect", "lab", "--db", db)
	if err == nil || !strings.Contains(errs, "--name lab-2") || strings.Contains(errs, "pick another --name") {
		t.Fatalf("connect over another instance of the name: %v\n%s", err, errs)
	}
	c.ok("connect", "lab", "--db", db, "--name", "lab-2")
	if out := c.ok("--instance", "lab-2", "ls"); !strings.Contains(out, "x.txt") {
		t.Errorf("ls of the instance joined under another name: %s", out)
	}
	if out := c.ok("--instance", "lab", "ls"); strings.Contains(out, "x.txt") {
		t.Errorf("carl's own lab lists the team's: %s", out)
	}
}

// A mount of a role that may only read keeps scratch paths (audit c7):
// they never touch the catalog, but `mkdir .snakemake` got EROFS, so
// Snakemake could not even start a dry run there. Keys stay read-only, and
// so does a rename of a scratch file onto a key (a commit).
func TestReadOnlyRoleScratch(t *testing.T) {
	db := pgtest.URL(t)
	a := workstationEnv(t, "ana")
	a.ok("init", "--storage", filepath.Join(a.dir, "store"), "--name", "lab", "--db", db)
	a.ok("save", a.file("x.txt", []byte("x")), "--key", "x.txt")
	schema := db[strings.Index(db, "search_path=")+len("search_path="):]
	role := "ro_" + schema
	pgtest.Exec(t, db, `CREATE ROLE `+role+` NOLOGIN; GRANT USAGE ON SCHEMA `+schema+` TO `+role+
		`; GRANT SELECT ON ALL TABLES IN SCHEMA `+schema+` TO `+role)
	t.Cleanup(func() { pgtest.Exec(t, pgtest.Base(t), `DROP OWNED BY `+role+`; DROP ROLE `+role) })
	r := workstationEnv(t, "rita")
	r.ok("connect", "lab", "--db", pgtest.WithParam(db, "role", role))
	m := filepath.Join(r.dir, "mnt")
	r.mount(m)
	sm := filepath.Join(m, ".snakemake")
	if err := os.Mkdir(sm, 0o755); err != nil {
		t.Fatalf("mkdir .snakemake on a read-only mount: %v", err)
	}
	if err := os.WriteFile(filepath.Join(sm, "log.txt"), []byte("dry run\n"), 0o644); err != nil {
		t.Fatalf("a scratch file: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(sm, "log.txt")); err != nil || string(b) != "dry run\n" {
		t.Fatalf("read back: %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(m, "notes.txt~"), []byte("backup"), 0o644); err != nil {
		t.Fatalf("an editor's backup file: %v", err)
	}
	if err := os.Rename(filepath.Join(m, "notes.txt~"), filepath.Join(m, "notes.txt.bak~")); err != nil {
		t.Fatalf("a rename within scratch: %v", err)
	}
	ents, _ := os.ReadDir(m)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); !strings.Contains(got, ".snakemake") || !strings.Contains(got, "notes.txt.bak~") || !strings.Contains(got, "x.txt") {
		t.Errorf("listing: %s", got)
	}
	if err := os.Rename(filepath.Join(m, "notes.txt.bak~"), filepath.Join(m, "notes.txt")); !errors.Is(err, syscall.EROFS) {
		t.Errorf("rename of a scratch file onto a key: %v, want EROFS", err)
	}
	if err := os.WriteFile(filepath.Join(m, "y.txt"), []byte("y"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("a key on a read-only mount: %v, want EROFS", err)
	}
	if err := os.Remove(filepath.Join(m, "x.txt")); !errors.Is(err, syscall.EROFS) {
		t.Errorf("rm of a key on a read-only mount: %v, want EROFS", err)
	}
	if err := os.RemoveAll(sm); err != nil {
		t.Errorf("rm -r .snakemake: %v", err)
	}
	if err := os.Remove(filepath.Join(m, "notes.txt.bak~")); err != nil {
		t.Errorf("rm of a scratch file: %v", err)
	}
}

// A file opened for an in-place edit on one workstation while another
// workstation commits the key: the close makes its own version on the
// bytes it opened (the other's change is only in the version before),
// and the mount's log says so, naming the versions (audit: a silent
// drop of the other side's lines).
func TestStaleBaseWarning(t *testing.T) {
	_, _, _, a, b := team(t)
	ma, mb := filepath.Join(a.dir, "mnt"), filepath.Join(b.dir, "mnt")
	a.mount(ma)
	b.mount(mb)
	benLog := func() string {
		logs, _ := filepath.Glob(filepath.Join(b.dir, "run", "lamina", "*", "mount.log"))
		var all []byte
		for _, p := range logs {
			raw, _ := os.ReadFile(p)
			all = append(all, raw...)
		}
		return string(all)
	}
	const warn = "was based on"

	if err := os.WriteFile(filepath.Join(ma, "x.txt"), []byte("one\n"), 0o644); err != nil { // v1
		t.Fatal(err)
	}
	waitFor(t, "ana's v1 on ben's mount", 30*time.Second, readString(filepath.Join(mb, "x.txt")), "one\n")
	// Ben appends and edits on his own: no warning.
	appendTo := func(p, s string) {
		t.Helper()
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	appendTo(filepath.Join(mb, "x.txt"), "ben\n") // v2
	waitFor(t, "ben's v2 on ana's mount", 30*time.Second, readString(filepath.Join(ma, "x.txt")), "one\nben\n")

	// Ben opens it for an in-place edit and writes; ana replaces it (v3)
	// before ben's close (v4, on v2's bytes).
	f, err := os.OpenFile(filepath.Join(mb, "x.txt"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("O"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ma, "x.txt"), []byte("ana\n"), 0o644); err != nil { // v3
		t.Fatal(err)
	}
	if err := f.Close(); err != nil { // v4
		t.Fatal(err)
	}
	waitFor(t, "ben's v4 on ana's mount", 30*time.Second, readString(filepath.Join(ma, "x.txt")), "One\nben\n")
	if got, err := readString(filepath.Join(mb, "x.txt@v3"))(); err != nil || got != "ana\n" {
		t.Fatalf("x.txt@v3: %q %v", got, err)
	}
	want := "x.txt: this close (v4) was based on v2 but replaced v3"
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(benLog(), want) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	log := benLog()
	if !strings.Contains(log, want) || !strings.Contains(log, "x.txt@v3") {
		t.Fatalf("ben's mount log lacks %q:\n%s", want, log)
	}
	if n := strings.Count(log, warn); n != 1 {
		t.Fatalf("%d warnings, want 1 (the appends on his own base warn of nothing):\n%s", n, log)
	}

	// A file ben opened and has not written yet follows the version ana
	// commits meanwhile, as it follows his own mount's: his edit then
	// builds on ana's bytes (v5 → v6), with no warning.
	f, err = os.OpenFile(filepath.Join(mb, "x.txt"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ma, "x.txt"), []byte("ana again\n"), 0o644); err != nil { // v5
		t.Fatal(err)
	}
	waitFor(t, "ana's v5 on ben's mount", 30*time.Second, readString(filepath.Join(mb, "x.txt")), "ana again\n")
	if _, err := f.WriteAt([]byte("A"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil { // v6
		t.Fatal(err)
	}
	waitFor(t, "ben's v6 on ana's mount", 30*time.Second, readString(filepath.Join(ma, "x.txt")), "Ana again\n")
	if got, err := readString(filepath.Join(ma, "x.txt@v6"))(); err != nil || got != "Ana again\n" {
		t.Fatalf("x.txt@v6: %q %v", got, err)
	}
	if n := strings.Count(benLog(), warn); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, benLog())
	}

	// A file ben created (`exec 7>>k2`) and closes unwritten after ana
	// committed it makes no empty version over hers (audit c4).
	f, err = os.OpenFile(filepath.Join(mb, "k2"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ma, "k2"), []byte("ana\n"), 0o644); err != nil { // v1
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mb, "k2@v2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("k2@v2 after ben's unwritten close: %v", err)
	}
	waitFor(t, "ana's k2 on ben's mount", 30*time.Second, readString(filepath.Join(mb, "k2")), "ana\n")
}
