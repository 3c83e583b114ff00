package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
	"github.com/lamina-bio/lamina/instance"
)

// tcpProxy forwards connections to a server; Down cuts them and refuses
// new ones until Up: a database that goes away and comes back. Freeze
// stops forwarding without closing anything until Thaw: a server that
// hangs (SIGSTOP) or a network that drops packets.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	down   bool
	frozen bool
	// startingUntil: until then connections are answered as a server
	// starting up answers (57P03), then closed.
	startingUntil time.Time
	thawed        *sync.Cond // on mu: frozen became false
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	p.thawed = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.Thaw(); p.Down() })
	return p
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		p.mu.Lock()
		starting := time.Now().Before(p.startingUntil)
		p.mu.Unlock()
		if starting {
			go startingUp(c)
			continue
		}
		d, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, d)
		p.mu.Unlock()
		go func() { p.copy(d, c); d.Close() }()
		go func() { p.copy(c, d); c.Close() }()
	}
}

func (p *tcpProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// StartingUp makes connections meet a server that is starting up for d:
// after a restart or a crash PostgreSQL refuses them with 57P03
// (cannot_connect_now) for a second or so.
func (p *tcpProxy) StartingUp(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.startingUntil = time.Now().Add(d)
}

// startingUp answers a client's startup as PostgreSQL does while starting
// up: an SSLRequest gets "N", the startup message a FATAL 57P03.
func startingUp(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		if n < 8 || n > 1<<16 {
			return
		}
		if _, err := io.CopyN(io.Discard, c, int64(n-8)); err != nil {
			return
		}
		if code := binary.BigEndian.Uint32(hdr[4:]); code == 80877103 || code == 80877104 { // SSLRequest, GSSENCRequest
			c.Write([]byte("N"))
			continue
		}
		fields := "SFATAL\x00VFATAL\x00C57P03\x00Mthe database system is starting up\x00\x00"
		msg := binary.BigEndian.AppendUint32([]byte{'E'}, uint32(4+len(fields)))
		c.Write(append(msg, fields...))
		return
	}
}

func (p *tcpProxy) Up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// copy forwards src to dst, holding what it read while the proxy is frozen.
func (p *tcpProxy) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.frozen {
				p.thawed.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Freeze stops forwarding, in both directions and on new connections,
// keeping every connection open.
func (p *tcpProxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = true
}

// Thaw forwards again what was held and what comes.
func (p *tcpProxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = false
	p.thawed.Broadcast()
}

// proxiedPG returns the URL of an empty test database (pgtest.URL) reached
// through a TCP proxy, to cut or freeze, and the password for PGPASSWORD:
// the PGPASSFILE line names the server's port, not the proxy's, so libpq
// would not find it there.
func proxiedPG(t *testing.T) (db string, proxy *tcpProxy, pass string) {
	t.Helper()
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy = newTCPProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	if b, err := os.ReadFile(os.Getenv("PGPASSFILE")); err == nil {
		if f := strings.Split(strings.TrimSpace(strings.Split(string(b), "\n")[0]), ":"); len(f) == 5 {
			pass = f[4]
		}
	}
	return u.String(), proxy, pass
}

// The database away while a workstation's mount is up: status says so, a
// file closed meanwhile gets EIO at close and is counted, and once the
// database is back the daemon commits it and its own mount lists it (no
// handle's close told the mount; before, only the other workstations saw
// it).
func TestCatalogOutageWhileMounted(t *testing.T) {
	db, proxy, pass := proxiedPG(t)
	e := workstationEnv(t, "ana", "LAMINA_RETRY_FAILED=200ms", "PGPASSWORD="+pass)
	e.ok("init", "--storage", filepath.Join(e.dir, "storage"), "--db", db, "--name", "lab")
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	if err := os.WriteFile(filepath.Join(mnt, "before.txt"), []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.ReadDir(mnt) // the folder's listing is cached
	status := func() mountStatus {
		var st []mountStatus
		if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 {
			t.Fatalf("status: %v %+v", err, st)
		}
		return st[0]
	}

	proxy.Down()
	if st := status(); st.CatalogError == "" {
		t.Errorf("status with the database away says nothing of it: %+v", st)
	}
	if s := e.ok("status"); !strings.Contains(s, "catalog         not answering") {
		t.Errorf("status with the database away:\n%s", s)
	}
	werr := os.WriteFile(filepath.Join(mnt, "during.txt"), []byte("written while the database was away\n"), 0o644)
	if werr == nil {
		t.Fatal("a close with the database away succeeded")
	}
	t.Logf("write with the database away: %v", werr)
	// Counted at RELEASE, which the kernel sends after close(2) returned.
	waitFor(t, "failed closes with the database away", 30*time.Second, func() (string, error) {
		return fmt.Sprint(status().FailedCommits), nil
	}, "1")

	proxy.Up()
	waitFor(t, "the file closed during the outage, through its own mount", 60*time.Second,
		readString(filepath.Join(mnt, "during.txt")), "written while the database was away\n")
	waitFor(t, "the file closed during the outage, committed", 60*time.Second,
		catalogGet(e, "during.txt"), "written while the database was away\n")
	if st := status(); st.FailedCommits != 0 || st.CatalogError != "" {
		t.Errorf("status once the database is back: %+v", st)
	}
	if out := e.ok("ls", "--versions", "during.txt"); strings.Count(out, "during.txt") != 1 {
		t.Errorf("versions of the file closed during the outage:\n%s", out)
	}

	// Unmounted while the database is away: umount says what stays staged,
	// and the next mount commits it.
	proxy.Down()
	if os.WriteFile(filepath.Join(mnt, "late.txt"), []byte("closed just before umount\n"), 0o644) == nil {
		t.Fatal("a close with the database away succeeded")
	}
	waitFor(t, "the failed close counted (at RELEASE)", 30*time.Second, func() (string, error) {
		return fmt.Sprint(status().FailedCommits), nil
	}, "1")
	_, errs, err := e.run("umount", mnt)
	if err != nil || !strings.Contains(errs, "1 closed file whose commit failed at close") {
		t.Errorf("umount with a failed close pending: %v\n%s", err, errs)
	}
	proxy.Up()
	e.mount(mnt)
	if got, err := readString(filepath.Join(mnt, "late.txt"))(); got != "closed just before umount\n" {
		t.Errorf("late.txt after the next mount: %q, %v", got, err)
	}
}

// A database that hangs rather than refuses (a stopped server, a network
// that drops packets) while a workstation's mount is up: a close, whose
// FLUSH the kernel cannot interrupt, fails within the catalog's bound
// (LAMINA_CATALOG_TIMEOUT) as it does with the server refused, and keeps
// its bytes, which are committed once the database answers again; a
// listing the mount has not cached fails within the bound too. Before,
// both waited for as long as the server hung, the close unkillable.
func TestCatalogHungWhileMounted(t *testing.T) {
	db, proxy, pass := proxiedPG(t)
	const bound = 3 * time.Second
	e := workstationEnv(t, "ana", "LAMINA_RETRY_FAILED=200ms", "LAMINA_CATALOG_TIMEOUT="+bound.String(), "PGPASSWORD="+pass)
	e.ok("init", "--storage", filepath.Join(e.dir, "storage"), "--db", db, "--name", "lab")
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	if err := os.WriteFile(filepath.Join(mnt, "before.txt"), []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A folder the mount has never listed (saved by the CLI).
	src := filepath.Join(e.dir, "cold.txt")
	os.WriteFile(src, []byte("cold\n"), 0o644)
	e.ok("save", src, "--key", "cold/f.txt")
	// Listed in its parent, never itself (a stat of it would list it).
	waitFor(t, "the CLI's folder in the mount", 30*time.Second, func() (string, error) {
		ents, err := os.ReadDir(mnt)
		for _, d := range ents {
			if d.Name() == "cold" {
				return "listed", nil
			}
		}
		return "", err
	}, "listed")

	proxy.Freeze()
	thawed := false
	defer func() {
		if !thawed {
			proxy.Thaw()
		}
	}()
	// A close: it must end within the bound (plus the time to stage and
	// store), not when the server answers again.
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- os.WriteFile(filepath.Join(mnt, "during.txt"), []byte("written while the database hung\n"), 0o644)
	}()
	select {
	case werr := <-done:
		took := time.Since(start)
		if werr == nil {
			t.Errorf("a close with the database hung succeeded (after %s)", took)
		}
		t.Logf("close with the database hung: %v after %s", werr, took.Round(time.Millisecond))
		if took > 4*bound {
			t.Errorf("the close took %s with a bound of %s", took, bound)
		}
	case <-time.After(30 * time.Second):
		proxy.Thaw()
		thawed = true
		<-done
		t.Fatalf("a close with the database hung was still waiting after 30 s (bound %s)", bound)
	}
	// An uncached listing: EIO within the bound. The store's own cache
	// of listings serves for 5 s after it last heard from the server.
	time.Sleep(6 * time.Second)
	start = time.Now()
	lerr := make(chan error, 1)
	go func() { _, err := os.ReadDir(filepath.Join(mnt, "cold")); lerr <- err }()
	select {
	case err := <-lerr:
		if err == nil {
			t.Error("a listing the mount had not cached succeeded with the database hung")
		}
		t.Logf("listing with the database hung: %v after %s", err, time.Since(start).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		proxy.Thaw()
		thawed = true
		<-lerr
		t.Fatalf("a listing with the database hung was still waiting after 30 s (bound %s)", bound)
	}

	proxy.Thaw()
	thawed = true
	waitFor(t, "the file closed while the database hung, once it answers", 60*time.Second,
		readString(filepath.Join(mnt, "during.txt")), "written while the database hung\n")
	waitFor(t, "the file closed while the database hung, committed", 60*time.Second,
		catalogGet(e, "during.txt"), "written while the database hung\n")
	if out := e.ok("ls", "--versions", "during.txt"); strings.Count(out, "during.txt") != 1 {
		t.Errorf("versions of the file closed while the database hung:\n%s", out)
	}
	waitFor(t, "failed closes once the database answers", 60*time.Second, func() (string, error) {
		var st []mountStatus
		if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 {
			return "", fmt.Errorf("status: %v %+v", err, st)
		}
		return fmt.Sprint(st[0].FailedCommits), nil
	}, "0")
	if got, err := readString(filepath.Join(mnt, "cold/f.txt"))(); got != "cold\n" {
		t.Errorf("cold/f.txt once the database answers: %q, %v", got, err)
	}
}

// The hint about where a database password comes from follows only a
// refused login, not every failure to open the catalog (a server away, a
// schema too new).
func TestPasswordHintOnlyForLogins(t *testing.T) {
	e := newEnv(t)
	_, errs, err := e.run("connect", "lab", "--db", "postgresql://lamina@127.0.0.1:1/lamina")
	if err == nil || strings.Contains(errs+err.Error(), "a password comes from") {
		t.Errorf("connect to a port nothing listens on: %v\n%s", err, errs)
	}
	if !authFailed(errors.New(`failed SASL auth: FATAL: password authentication failed for user "lamina" (SQLSTATE 28P01)`)) {
		t.Error("a refused login is not taken for one")
	}
}

// A database server that is down is one line and a hint, for the CLI and
// the mount alike, not pgx's list of every attempt (each address twice
// with sslmode=prefer).
func TestPostgresDownOneLine(t *testing.T) {
	db := pgtest.URL(t)
	e := workstationEnv(t, "ana")
	e.ok("init", "--storage", filepath.Join(e.dir, "store"), "--name", "lab", "--db", db)
	p := filepath.Join(e.dir, "cfg", "lamina", "instances", "lab.json")
	var s map[string]any
	if err := json.Unmarshal(mustRead(t, p), &s); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(s["catalog"].(string))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = "127.0.0.1:1" // nothing listens
	s["catalog"] = u.String()
	b, _ := json.Marshal(s)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(e.dir, "mnt")
	os.MkdirAll(mnt, 0o755)
	for _, args := range [][]string{{"ls"}, {"mount", mnt}, {"connect", "lab", "--db", u.String()}} {
		_, errs, err := e.run(args...)
		if err == nil || strings.Count(errs, "connection refused") != 1 || !strings.Contains(errs, "is the database server up") {
			t.Errorf("lamina %s: %v\n%s", strings.Join(args, " "), err, errs)
		}
	}
}

// The database of a mounted instance unreachable (its port closed):
// `lamina status` printed pgx's dial error twice in the catalog row (one
// line per try, TLS then plain, with sslmode=prefer), in the table and in
// JSON's catalog_error. It says it once, naming the database's host:port
// and never the password.
func TestStatusDatabaseDownOneLine(t *testing.T) {
	db, proxy, pass := proxiedPG(t)
	e := workstationEnv(t, "ana", "PGPASSWORD="+pass)
	e.ok("init", "--storage", filepath.Join(e.dir, "storage"), "--name", "lab", "--db", db)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	addr := proxy.ln.Addr().String()
	proxy.ln.Close() // nothing listens there now: connection refused
	proxy.Down()

	table := e.ok("status")
	var st []mountStatus
	if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 {
		t.Fatalf("status: %v %+v", err, st)
	}
	for name, out := range map[string]string{"status": table, "status --format json": st[0].CatalogError} {
		if n := strings.Count(out, "connection refused"); n != 1 || !strings.Contains(out, addr) || strings.Contains(out, pass) {
			t.Errorf("lamina %s with the database at %s down: %d times \"connection refused\", want once, with the address and without the password:\n%s", name, addr, n, out)
		}
	}
	if ce := st[0].CatalogError; strings.Contains(ce, "\n") {
		t.Errorf("catalog_error is more than one line: %q", ce)
	}
}

// status's catalog row is one line naming the database, whatever pgx
// joined: each try once, the server's host:port before a cause that does
// not name it, no password.
func TestCatalogCause(t *testing.T) {
	pg := instance.Settings{Catalog: "postgresql://ana@db.lab:5433/lamina?search_path=x"}
	refused := "db.lab:5433 (10.0.0.7): dial error: dial tcp 10.0.0.7:5433: connect: connection refused"
	for _, c := range []struct {
		name string
		s    instance.Settings
		err  error
		want string
	}{
		{"refused, TLS then plain", pg, fmt.Errorf("catalog: outbox: %w", errors.Join(errors.New(refused), errors.New(refused))), refused},
		{"hung", pg, fmt.Errorf("catalog: outbox: %w", context.DeadlineExceeded), "database db.lab:5433: context deadline exceeded"},
		{"no TLS, then a refused login", pg, errors.Join(errors.New("db.lab:5433 (10.0.0.7): tls error: server refused TLS connection"), errors.New("db.lab:5433 (10.0.0.7): failed SASL auth: unexpected EOF")), "db.lab:5433 (10.0.0.7): failed SASL auth: unexpected EOF"},
		{"two addresses", pg, errors.Join(errors.New("db.lab:5433 (10.0.0.7): dial error: refused"), errors.New("db.lab:5433 (10.0.0.8): dial error: refused")), "db.lab:5433 (10.0.0.7): dial error: refused; db.lab:5433 (10.0.0.8): dial error: refused"},
		{"bbolt", instance.Settings{Catalog: "/data/catalog.db"}, errors.New("timeout"), "timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := catalogCause(c.s, c.err); got != c.want {
				t.Errorf("catalogCause = %q, want %q", got, c.want)
			}
		})
	}
}

// A database that was dropped ("database … does not exist") was pgx's
// list of each address tried, each twice (TLS, then plain), with no hint;
// `lamina info` was refused, so the instance's settings could be read
// only from the refusal. Now it is one line and a hint, and info shows
// the local settings with the catalog unavailable.
func TestPostgresDroppedDatabaseOneLine(t *testing.T) {
	db := pgtest.URL(t)
	e := workstationEnv(t, "ana")
	store := filepath.Join(e.dir, "store")
	e.ok("init", "--storage", store, "--name", "lab", "--db", db)
	p := filepath.Join(e.dir, "cfg", "lamina", "instances", "lab.json")
	var s map[string]any
	if err := json.Unmarshal(mustRead(t, p), &s); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(s["catalog"].(string))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/lamina_dropped_d3"
	s["catalog"] = u.String()
	b, _ := json.Marshal(s)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(e.dir, "mnt")
	os.MkdirAll(mnt, 0o755)
	for _, args := range [][]string{{"ls"}, {"mount", mnt}, {"connect", "lab2", "--db", u.String()}} {
		_, errs, err := e.run(args...)
		if err == nil || strings.Count(errs, "does not exist") != 1 || !strings.Contains(errs, "was the database dropped") || strings.Contains(errs, "TLS") ||
			strings.Count(strings.TrimSpace(errs), "\n") != 1 {
			t.Errorf("lamina %s: %v\n%s", strings.Join(args, " "), err, errs)
		}
	}
	out, errs, err := e.run("info")
	for _, want := range []string{"storage    " + store, "catalog    " + u.String() + " (PostgreSQL)", "unavailable"} {
		if err == nil || !strings.Contains(out, want) || !strings.Contains(errs, `"lamina_dropped_d3" does not exist`) {
			t.Errorf("info does not say %q: %v\n%s\n%s", want, err, out, errs)
		}
	}
}

// The audit's repro (c7), two workstations: the shared database away, ben
// closes shared/r2.txt, ana closes it 2 s later; both closes fail and keep
// their bytes. Once the database is back ben's retry commits first (a
// commit of another file starts it), then ana's: ana's later close is v2,
// the latest, and nothing goes to lost+found/. Before, ben's retry made v1
// at the retry's time, and ana's later bytes looked "saved again since"
// and went to lost+found/.
func TestOutageTwoWorkstationsLaterCloseWins(t *testing.T) {
	db, proxy, pass := proxiedPG(t)
	store := filepath.Join(t.TempDir(), "storage")
	ben := workstationEnv(t, "ben", "LAMINA_RETRY_FAILED=1h", "PGPASSWORD="+pass)
	ana := workstationEnv(t, "ana", "LAMINA_RETRY_FAILED=1h", "PGPASSWORD="+pass)
	ben.ok("init", "--storage", store, "--db", db, "--name", "lab")
	ana.ok("connect", "lab", "--db", db)
	mb, ma := filepath.Join(ben.dir, "mnt"), filepath.Join(ana.dir, "mnt")
	ben.mount(mb)
	ana.mount(ma)
	os.MkdirAll(filepath.Join(mb, "shared"), 0o755)
	for _, m := range []string{mb, ma} {
		waitFor(t, "the folder", 30*time.Second, func() (string, error) {
			_, err := os.ReadDir(filepath.Join(m, "shared")) // its listing is cached: a create needs no lookup
			return "", err
		}, "")
	}
	proxy.Down()
	if os.WriteFile(filepath.Join(mb, "shared/r2.txt"), []byte("ben-first\n"), 0o644) == nil {
		t.Fatal("ben's close with the database away succeeded")
	}
	time.Sleep(2 * time.Second)
	if os.WriteFile(filepath.Join(ma, "shared/r2.txt"), []byte("ana-second\n"), 0o644) == nil {
		t.Fatal("ana's close with the database away succeeded")
	}
	for _, e := range []*mntEnv{ben, ana} {
		// Counted at RELEASE, which commits too: the database stays away
		// until both failed there.
		waitFor(t, "a failed close", 30*time.Second, func() (string, error) {
			var st []mountStatus
			err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st)
			if err != nil || len(st) != 1 {
				return "", err
			}
			return fmt.Sprint(st[0].FailedCommits), nil
		}, "1")
	}
	proxy.Up()
	cat := func(p string) func() (string, error) { return readString(p) }
	// A commit that succeeds starts the retry of the failed closes at once.
	if err := os.WriteFile(filepath.Join(mb, "ben.txt"), []byte("back\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ben's retry", 60*time.Second, cat(filepath.Join(mb, "shared/r2.txt@v1")), "ben-first\n")
	if err := os.WriteFile(filepath.Join(ma, "ana.txt"), []byte("back\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ana's retry", 60*time.Second, func() (string, error) {
		return fmt.Sprint(strings.Count(ana.ok("ls", "--versions", "shared/r2.txt"), "shared/r2.txt")), nil
	}, "2")
	waitFor(t, "the latest, on ben's mount", 30*time.Second, cat(filepath.Join(mb, "shared/r2.txt")), "ana-second\n")
	if out := ben.ok("ls", "lost+found/"); strings.Contains(out, "r2.txt") {
		t.Errorf("lost+found after the retries:\n%s", out)
	}
}

// A close just after PostgreSQL restarted: for a second or so the server
// refuses connections with 57P03 (the database system is starting up),
// and the close failed with EIO, its bytes committed only at the retry 30 s
// later (audit a3). The catalog waits that out.
func TestCloseWhilePostgresStartsUp(t *testing.T) {
	db, proxy, pass := proxiedPG(t)
	e := workstationEnv(t, "ana", "PGPASSWORD="+pass)
	e.ok("init", "--storage", filepath.Join(e.dir, "storage"), "--db", db, "--name", "lab")
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	if err := os.WriteFile(filepath.Join(mnt, "before.txt"), []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	proxy.Down() // the restart: every connection cut
	proxy.StartingUp(2 * time.Second)
	proxy.Up()
	if err := os.WriteFile(filepath.Join(mnt, "after.txt"), []byte("closed while the server started\n"), 0o644); err != nil {
		t.Fatalf("a close while the database was starting up: %v", err)
	}
	if out := e.ok("ls", "--versions", "after.txt"); strings.Count(out, "after.txt") != 1 {
		t.Errorf("versions of the file closed while the database started:\n%s", out)
	}
}
