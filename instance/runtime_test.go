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
