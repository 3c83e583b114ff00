package lineage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
)

// stuckCatalog is a catalog whose AddInputs fails while fail is set, and
// blocks (whatever its context says, as a hung connection may) until
// release is closed while block is set.
type stuckCatalog struct {
	catalog.Catalog
	fail, block atomic.Bool
	refuse      atomic.Bool // AddInputs answers as to a read-only role
	release     chan struct{}
	calls       atomic.Int32
	once        sync.Once
}

func (c *stuckCatalog) unblock() { c.once.Do(func() { close(c.release) }) }

func (c *stuckCatalog) AddInputs(ctx context.Context, run string, uids []string) error {
	c.calls.Add(1)
	if c.block.Load() {
		<-c.release
	}
	if c.fail.Load() {
		return errors.New("catalog away")
	}
	if c.refuse.Load() {
		return fmt.Errorf("catalog: %w", fs.ErrPermission) // as postgres.ErrReadOnly matches
	}
	return c.Catalog.AddInputs(ctx, run, uids)
}

// otherDaemonsRun returns a tracker over a stuckCatalog and a run of a
// live process registered with another daemon that the tracker resumed,
// and a version to read.
func otherDaemonsRun(t *testing.T) (*Tracker, *stuckCatalog, catalog.Run, catalog.Version) {
	ctx := context.Background()
	b, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	c := &stuckCatalog{Catalog: b, release: make(chan struct{})}
	tf, _ := c.SaveTransform(ctx, catalog.Transform{Name: "bash", Kind: "program"})
	s, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV("raw/a.csv", "a1")})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	root := exec.Command("sleep", "30")
	if err := root.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Process.Kill(); root.Wait() })
	start, err := ProcStart(root.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.StartRun(ctx, catalog.Run{Transform: tf.UID, Host: host, HostID: HostID(), RootPID: root.Process.Pid, RootStart: start, Daemon: "other-daemon"})
	if err != nil {
		t.Fatal(err)
	}
	tk := newTracker(c, TrackerOptions{FlushEvery: time.Hour}, "this-daemon")
	t.Cleanup(func() { c.unblock(); tk.Close() })
	if got := tk.Resume(ctx, []catalog.Run{r}); len(got) != 1 {
		t.Fatalf("resumed %v, want %s", got, r.UID)
	}
	return tk, c, r, s[0].Version
}

func inputs(t *testing.T, c catalog.Catalog, run string) []string {
	rec, err := c.RunRecord(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Inputs
}

// TestFlushKeepsInputsOnFailure: a flush emptied the queue before it
// wrote and dropped what the catalog refused: a catalog away for a moment
// lost the inputs of every run with inputs queued. They are queued again
// and written by a later flush.
func TestFlushKeepsInputsOnFailure(t *testing.T) {
	tk, c, r, v := otherDaemonsRun(t)
	c.fail.Store(true)
	tk.Used(r.UID, v) // the handler's own write fails: queued
	tk.flush()        // fails: queued again
	if err := tk.flush(); err != nil {
		t.Fatalf("a failure already reported is reported again: %v", err)
	}
	c.fail.Store(false)
	if err := tk.flush(); err != nil {
		t.Fatal(err)
	}
	if got := inputs(t, c, r.UID); !slices.Equal(got, []string{v.UID}) {
		t.Fatalf("inputs %v after the catalog came back, want [%s]", got, v.UID)
	}
}

// TestUsedDoesNotWaitOnAHungCatalog: Used, for a run another daemon
// registered, wrote every queued input (flush) inside the FUSE handler,
// behind any flush under way: a catalog whose writes hang hung each
// tracked open through this mount. It writes only that input, for a
// moment at most, and leaves it queued if the write is not done.
func TestUsedDoesNotWaitOnAHungCatalog(t *testing.T) {
	defer func(d time.Duration) { handlerWrite = d }(handlerWrite)
	handlerWrite = 50 * time.Millisecond
	tk, c, r, v := otherDaemonsRun(t)
	c.block.Store(true)
	// Another run's batch, stuck in a flush.
	tk.mu.Lock()
	tk.pending["another-run"] = []string{"some-version"}
	tk.mu.Unlock()
	go tk.flush()
	for deadline := time.Now().Add(30 * time.Second); c.calls.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the flush did not start in 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { tk.Used(r.UID, v); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // the write never ends: only a hang gets here
		t.Fatal("Used waits for a catalog write that hangs")
	}
	// The writes are still blocked (release is closed only now): once
	// they end, the input is recorded.
	c.block.Store(false)
	c.unblock()
	for deadline := time.Now().Add(30 * time.Second); !slices.Equal(inputs(t, c, r.UID), []string{v.UID}); {
		if time.Now().After(deadline) {
			t.Fatalf("inputs %v once the catalog answered, want [%s]", inputs(t, c, r.UID), v.UID)
		}
		time.Sleep(10 * time.Millisecond)
		tk.flush()
	}
}

// TestFlushDropsInputsARoleMayNotWrite: a read-only role's mount queued
// every refused input again, and retried each run's on every tick for good
// (audit 53: ~170 refused transactions a second after 33 runs, the
// server's log growing 36 KB/s). A refusal that will not change drops them.
func TestFlushDropsInputsARoleMayNotWrite(t *testing.T) {
	tk, c, r, v := otherDaemonsRun(t)
	c.refuse.Store(true)
	tk.Used(r.UID, v)
	tk.flush()
	before := c.calls.Load()
	for range 3 {
		tk.flush()
	}
	if n := c.calls.Load() - before; n != 0 {
		t.Fatalf("%d more AddInputs after the role was refused", n)
	}
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if len(tk.pending[r.UID]) != 0 {
		t.Fatalf("still queued: %v", tk.pending[r.UID])
	}
}
