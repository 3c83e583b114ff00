package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/instance"
)

// TestS3CLILeavesTheMountsCacheAlone: with `cache limit 5MB` saved and a
// mount running with --cache-size 1GB, a `lamina get` applied the
// settings' limit to the folder and deleted the daemon's blocks; the
// daemon went on counting them (status and cache info said 36 MiB while
// the folder held 8) and reading them through files it held open, whose
// disk space stayed taken. The daemon owns the cache while it runs: the
// CLI only adds blocks and tells it, and the figures are the folder's.
func TestS3CLILeavesTheMountsCacheAlone(t *testing.T) {
	e := newS3Env(t)
	x, y := randomBytes(t, 24<<20), randomBytes(t, 12<<20)
	e.ok("save", e.file("x.bin", x), "--key", "x.bin")
	e.ok("save", e.file("y.bin", y), "--key", "y.bin")
	e.ok("cache", "clear")
	e.ok("cache", "limit", "5MB")
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"), "--cache-size", "1GB")
	if !bytes.Equal(mustRead(t, filepath.Join(mnt, "x.bin")), x) {
		t.Fatal("read through the mount")
	}
	status := func() (pid int, used int64, dir string) {
		t.Helper()
		var st []struct {
			PID       int `json:"pid"`
			DiskCache struct {
				Dir  string `json:"dir"`
				Used int64  `json:"used_bytes"`
			} `json:"disk_cache"`
		}
		if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 {
			t.Fatalf("status: %v", err)
		}
		return st[0].PID, st[0].DiskCache.Used, st[0].DiskCache.Dir
	}
	onDisk := func(dir string) (n int64) {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".size") && !strings.HasSuffix(p, ".lock") {
				if info, err := d.Info(); err == nil {
					n += info.Size()
				}
			}
			return nil
		})
		return n
	}
	// A block goes to the cache folder after its bytes reached the reader
	// (DiskCache.runSpan): wait for the last ones.
	_, before, dir := status()
	for deadline := time.Now().Add(30 * time.Second); before < 24<<20; _, before, dir = status() {
		if time.Now().After(deadline) {
			t.Fatalf("the mount's cache holds %d bytes 30 s after reading 24 MiB through it", before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.ok("get", "y.bin", "-o", filepath.Join(e.dir, "y.out"))
	pid, used, _ := status()
	if disk := onDisk(dir); disk != used || disk < before {
		t.Errorf("after a get beside the mount: status says %d bytes cached, the folder holds %d (%d before the get)", used, disk, before)
	}
	// cache info (through the daemon) says the same.
	var ci struct {
		Cache struct {
			Used int64 `json:"used_bytes"`
		} `json:"cache"`
	}
	if err := json.Unmarshal([]byte(e.ok("cache", "info", "--format", "json")), &ci); err != nil || ci.Cache.Used != onDisk(dir) {
		t.Errorf("cache info says %d bytes used, the folder holds %d (%v)", ci.Cache.Used, onDisk(dir), err)
	}
	// The daemon holds no file of a block that is gone.
	fds, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	deleted := 0
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name()); err == nil && strings.HasPrefix(l, dir) && strings.HasSuffix(l, "(deleted)") {
			deleted++
		}
	}
	if deleted > 0 {
		t.Errorf("the mount daemon holds %d deleted block files open", deleted)
	}
	if !bytes.Equal(mustRead(t, filepath.Join(mnt, "x.bin")), x) {
		t.Fatal("read through the mount after the get")
	}
}

// TestS3PrefetchThroughTheMountKeepsItsVersion: `cache prefetch KEY`
// through the mount daemon looked KEY's latest version up again for every
// 64 MiB batch, so a version saved between two batches had the rest
// fetched from it, and the report named it. The first batch resolves the
// version; the next name it by its uid.
func TestS3PrefetchThroughTheMountKeepsItsVersion(t *testing.T) {
	e := newS3Env(t)
	const size = 80 << 20 // two batches (prefetchBatchBytes)
	e.ok("save", e.file("a.bin", randomBytes(t, size)), "--key", "a.bin")
	e.ok("cache", "clear")
	e.mountS3(filepath.Join(e.dir, "mnt"))
	dirs := instance.Dirs{Config: filepath.Join(e.dir, "cfg", "lamina"), Data: filepath.Join(e.dir, "data", "lamina"),
		Cache: filepath.Join(e.dir, "cache", "lamina"), Runtime: filepath.Join(e.dir, "run", "lamina")}
	s, err := dirs.Load("s3")
	if err != nil {
		t.Fatal(err)
	}
	batches := 0
	r, ok, err := prefetchInDaemon(context.Background(), dirs, s, "a.bin", func(r prefetchReport) {
		batches++
		if batches == 1 { // a new version between the first batch and the next
			e.ok("save", e.file("a2.bin", randomBytes(t, 70<<20)), "--key", "a.bin")
		}
	})
	if !ok || err != nil {
		t.Fatalf("prefetch through the daemon: answered %v, %v", ok, err)
	}
	if batches == 0 {
		t.Fatal("the prefetch went in one batch")
	}
	if r.Version != 1 || r.Bytes != size || r.Done != size {
		t.Errorf("a prefetch of a.bin@v1 with v2 saved after its first batch ended as v%d, %d of %d bytes", r.Version, r.Done, r.Bytes)
	}
}
