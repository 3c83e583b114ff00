package instance_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/lamina-bio/lamina/instance"
)

// LinkedRuntime finds the runtime folder of a daemon started under another
// XDG_RUNTIME_DIR through the link it keeps in the data folder, and
// nothing once the link is gone.
func TestLinkedRuntime(t *testing.T) {
	base := t.TempDir()
	mine := instance.Dirs{Config: base + "/cfg", Data: base + "/data", Cache: base + "/cache", Runtime: base + "/run/lamina"}
	theirs := mine
	theirs.Runtime = filepath.Join(t.TempDir(), "lamina")
	s := instance.Settings{Name: "m", DataDir: filepath.Join(base, "data", "m")}
	os.MkdirAll(s.DataDir, 0o700)
	if rt, ok := mine.LinkedRuntime(s); ok {
		t.Fatalf("no daemon: linked runtime %q", rt)
	}
	sock := theirs.SocketPath(s.Name)
	os.MkdirAll(filepath.Dir(sock), 0o700)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	unlink, err := theirs.LinkSocket(s, sock)
	if err != nil {
		t.Fatal(err)
	}
	if rt, ok := mine.LinkedRuntime(s); !ok || rt != theirs.Runtime {
		t.Fatalf("linked runtime = %q, %v; want %s", rt, ok, theirs.Runtime)
	}
	unlink()
	if rt, ok := mine.LinkedRuntime(s); ok {
		t.Fatalf("after unlink: linked runtime %q", rt)
	}
}

// Without XDG_RUNTIME_DIR the runtime folder is in the data folder, under
// a name no instance can have: it was DATA/run, the data folder of an
// instance named run. A daemon an older lamina started there is still
// found through its socket link.
func TestFallbackRuntimeIsNoInstanceName(t *testing.T) {
	base := t.TempDir()
	t.Setenv("HOME", base)
	t.Setenv("XDG_DATA_HOME", filepath.Join(base, "data"))
	t.Setenv("XDG_RUNTIME_DIR", "")
	d, err := instance.UserDirs()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(d.Runtime) != d.Data {
		t.Fatalf("runtime %s: want a folder in %s", d.Runtime, d.Data)
	}
	if instance.CheckName(filepath.Base(d.Runtime)) == nil {
		t.Fatalf("runtime %s: an instance may have that name, and its data folder is there", d.Runtime)
	}
	s, err := d.NewSettings("run", base)
	if err != nil {
		t.Fatal(err)
	}
	if s.DataDir == d.Runtime {
		t.Fatalf("instance run: data folder %s is the runtime folder", s.DataDir)
	}

	// A daemon of an older lamina: its socket in DATA/run/NAME.
	old := d
	old.Runtime = filepath.Join(d.Data, "run")
	m := instance.Settings{Name: "m", DataDir: filepath.Join(d.Data, "m")}
	os.MkdirAll(m.DataDir, 0o700)
	sock := old.SocketPath(m.Name)
	os.MkdirAll(filepath.Dir(sock), 0o700)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := old.LinkSocket(m, sock); err != nil {
		t.Fatal(err)
	}
	if got := d.DaemonSocket(m); got != filepath.Join(m.DataDir, "daemon.sock") {
		t.Fatalf("daemon socket %s: want the link to the old daemon's", got)
	}
	if rt, ok := d.LinkedRuntime(m); !ok || rt != old.Runtime {
		t.Fatalf("linked runtime = %q, %v; want %s", rt, ok, old.Runtime)
	}
}
