package main

import (
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
)

// tcpProxy forwards connections to a server; Down cuts them and refuses
// new ones until Up: a database that goes away and comes back.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	down   bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.Down() })
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
		d, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, d)
		p.mu.Unlock()
		go func() { io.Copy(d, c); d.Close() }()
		go func() { io.Copy(c, d); c.Close() }()
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

func (p *tcpProxy) Up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// The database away while a workstation's mount is up: status says so, a
// file closed meanwhile gets EIO at close and is counted, and once the
// database is back the daemon commits it and its own mount lists it (no
// handle's close told the mount; before, only the other workstations saw
// it).
func TestCatalogOutageWhileMounted(t *testing.T) {
	db := pgtest.URL(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	// ~/.pgpass names the server's port, not the proxy's: the password
	// goes by PGPASSWORD.
	var pass string
	if b, err := os.ReadFile(os.Getenv("PGPASSFILE")); err == nil {
		if f := strings.Split(strings.TrimSpace(strings.Split(string(b), "\n")[0]), ":"); len(f) == 5 {
			pass = f[4]
		}
	}
	e := workstationEnv(t, "ana", "LAMINA_RETRY_FAILED=200ms", "PGPASSWORD="+pass)
	e.ok("init", "--storage", filepath.Join(e.dir, "storage"), "--db", u.String(), "--name", "lab")
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
	waitFor(t, "failed closes with the database away", 5*time.Second, func() (string, error) {
		return fmt.Sprint(status().FailedCommits), nil
	}, "1")

	proxy.Up()
	waitFor(t, "the file closed during the outage, through its own mount", 20*time.Second,
		readString(filepath.Join(mnt, "during.txt")), "written while the database was away\n")
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
	waitFor(t, "the failed close counted (at RELEASE)", 5*time.Second, func() (string, error) {
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
