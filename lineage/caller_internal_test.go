package lineage

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

// TestCallerAsksAgainAfterAFailedRead: a read of /proc that Caller could
// not make was taken for "no run" and kept for as long as the thread
// lived. On a loaded machine the 20 ms given to a caller's environment
// ran out, and a process of a run known by its LAMINA_RUN alone (another
// daemon's `lamina run` on a shared catalog, a `lamina track` shell's
// command) lost every later read and write from its lineage. A read that
// timed out or failed, or an answer given while a run was registered,
// is asked again at the next call.
func TestCallerAsksAgainAfterAFailedRead(t *testing.T) {
	const uid = "CALLERTEST000001"
	emfile := &fs.PathError{Op: "open", Path: "/proc", Err: syscall.EMFILE}
	release := make(chan struct{}) // a timed-out environ read returns once closed
	defer close(release)
	for _, tc := range []struct {
		name string
		env  bool // the process carries LAMINA_RUN=uid
		// run is how the run is registered: by cgroup (root -1) or with
		// the test process as its root (the process is its child).
		run  catalog.Run
		root bool
		// fake answers the process's nth read (from 1) of name in place of
		// /proc, unless it returns errRealProc.
		fake func(tk *Tracker, name string, n int) ([]byte, error)
	}{
		{"EnvironTimesOut", true, catalog.Run{UID: uid, Cgroup: "/lamina-test/elsewhere"}, false,
			func(tk *Tracker, name string, n int) ([]byte, error) {
				if name == "environ" && n == 1 {
					<-release // past any deadline: the process's mmap lock is held
					return nil, errors.New("late")
				}
				return nil, errRealProc
			}},
		{"CgroupUnreadable", false, catalog.Run{UID: uid, Cgroup: "/lamina-test/run"}, false,
			func(tk *Tracker, name string, n int) ([]byte, error) {
				if name != "cgroup" {
					return nil, errRealProc
				}
				if n == 1 {
					return nil, emfile // the daemon out of descriptors, for a moment
				}
				return []byte("0::/lamina-test/run\n"), nil
			}},
		{"StatusUnreadable", false, catalog.Run{UID: uid, RootPID: os.Getpid()}, true,
			func(tk *Tracker, name string, n int) ([]byte, error) {
				if name == "status" && n == 1 {
					return nil, emfile
				}
				return nil, errRealProc
			}},
		{"RegisteredMeanwhile", false, catalog.Run{UID: "CALLERTEST000002", Cgroup: "/lamina-test/other"}, false,
			func(tk *Tracker, name string, n int) ([]byte, error) {
				switch {
				case name == "cgroup":
					return []byte("0::/lamina-test/late\n"), nil
				case name == "environ" && n == 1:
					// The run registers while the first open resolves.
					tk.register(catalog.Run{UID: uid, Cgroup: "/lamina-test/late"}, -1, source{}, false)
				}
				return nil, errRealProc
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tk := newTracker(c, TrackerOptions{FlushEvery: time.Hour, EnvDeadline: time.Minute}, "this-daemon")
			defer tk.Close()
			cmd := exec.Command("sleep", "30")
			if tc.env {
				cmd.Env = append(os.Environ(), EnvRun+"="+uid)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			pid := cmd.Process.Pid
			var mu sync.Mutex
			reads := map[string]int{}
			tk.readProc = func(tid int, name string) ([]byte, error) {
				if tid == pid {
					mu.Lock()
					reads[name]++
					n := reads[name]
					mu.Unlock()
					if b, err := tc.fake(tk, name, n); err != errRealProc {
						return b, err
					}
				}
				return readProc(tid, name)
			}
			fd := pidfd(-1)
			if tc.root {
				var ok bool
				if fd, ok = openPidfd(tc.run.RootPID); !ok {
					t.Fatal("no pidfd_open here")
				}
			}
			tk.register(tc.run, fd, source{}, false)
			if tc.name == "EnvironTimesOut" {
				tk.opts.EnvDeadline = time.Millisecond // the read above never answers in time
			}
			first := tk.Caller(uint32(pid))
			tk.opts.EnvDeadline = time.Minute // the next reads are /proc's: let the load take its time
			if got := tk.Caller(uint32(pid)); got != uid {
				t.Fatalf("after a first open resolved to %q, the process resolves to %q, want %s", first, got, uid)
			}
		})
	}
}

// errRealProc: a fake of readProc leaves this read to /proc.
var errRealProc = errors.New("read /proc")

// envMarker tells a failed read of the environment (no answer) from one
// refused (a process of another user: no marker to find, ever).
func TestEnvMarkerTellsFailureFromRefusal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		b      []byte
		err    error
		want   string
		wantOK bool
	}{
		{"Marker", []byte("A=1\x00" + EnvRun + "=RUN\x00B=2\x00"), nil, "RUN", true},
		{"NoMarker", []byte("A=1\x00"), nil, "", true},
		{"Refused", nil, &fs.PathError{Op: "open", Path: "/proc/1/environ", Err: syscall.EACCES}, "", true},
		{"OutOfDescriptors", nil, &fs.PathError{Op: "open", Path: "/proc/1/environ", Err: syscall.EMFILE}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			read := func(int, string) ([]byte, error) { return tc.b, tc.err }
			if m, ok := envMarker(read, 1, time.Minute); m != tc.want || ok != tc.wantOK {
				t.Fatalf("envMarker = %q, %v; want %q, %v", m, ok, tc.want, tc.wantOK)
			}
		})
	}
}
