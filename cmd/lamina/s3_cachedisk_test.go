package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tmpfsDir mounts a tmpfs of size bytes on a new folder, unmounted at the
// end of the test (after what the test mounts later).
func tmpfsDir(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestS3CacheOnASmallDisk: a cache folder on a disk smaller than the
// cache's limit (the default 10 GiB) filled the disk; every block fetched
// after failed with ENOSPC and was lost, nothing was evicted, a read of a
// 200 MiB file fetched 836 MiB, and the status said "64.0 MiB of 9.3 GiB"
// as if all was well. The cache now keeps to what its disk holds, evicts
// when a write finds the disk full, and says so.
func TestS3CacheOnASmallDisk(t *testing.T) {
	small := tmpfsDir(t, "32m")
	e := newS3Env(t, "XDG_CACHE_HOME="+small)
	const size = 96 << 20
	data := randomBytes(t, size)
	e.ok("save", e.file("big.bin", data), "--key", "d/big.bin")
	e.ok("cache", "clear")
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	f, err := os.Open(filepath.Join(mnt, "d", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("read through the mount differs")
	}
	// Read from JSON, not CacheInfo: the test builds without the fix.
	var st []struct {
		DiskCache *struct {
			Fetched     int64  `json:"fetched_bytes"`
			Used        int64  `json:"used_bytes"`
			DiskLimit   int64  `json:"disk_limit_bytes"`
			StoreFailed int64  `json:"store_failed_blocks"`
			StoreError  string `json:"store_error"`
		} `json:"disk_cache"`
	}
	if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 || st[0].DiskCache == nil {
		t.Fatalf("status: %v %+v", err, st)
	}
	ci := st[0].DiskCache
	t.Logf("fetched %d MiB for %d MiB; used %d MiB, disk limit %d MiB, %d blocks not written (%s)", ci.Fetched>>20, size>>20, ci.Used>>20, ci.DiskLimit>>20, ci.StoreFailed, ci.StoreError)
	if ci.Fetched > 2*size {
		t.Errorf("a read of %d MiB through a cache on a 32 MiB disk fetched %d MiB", size>>20, ci.Fetched>>20)
	}
	if ci.DiskLimit <= 0 || ci.DiskLimit > 32<<20 {
		t.Errorf("status gives the cache's disk limit as %d, want what a 32 MiB disk holds", ci.DiskLimit)
	}
	if out := e.ok("status"); !strings.Contains(out, "its disk holds only") {
		t.Errorf("status does not say the cache's disk holds less than its limit:\n%s", out)
	}
	if out := e.ok("cache", "info"); !strings.Contains(out, "its disk holds only") {
		t.Errorf("cache info does not say the cache's disk holds less than its limit:\n%s", out)
	}
	// A second read fetches what the cache could not keep, once.
	before := ci.Fetched
	if got := mustRead(t, filepath.Join(mnt, "d", "big.bin")); !bytes.Equal(got, data) {
		t.Fatal("second read differs")
	}
	if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 {
		t.Fatalf("status: %v", err)
	}
	if n := st[0].DiskCache.Fetched - before; n > 2*size {
		t.Errorf("a second read of %d MiB fetched %d MiB", size>>20, n>>20)
	}
}
