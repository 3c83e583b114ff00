package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

// BenchmarkDaemonRSS measures the mount daemon's peak memory (VmHWM) with
// 100,000 artifacts in 1,000 folders mounted, after `find` and `ls -lR` of
// the whole tree (issue 3: goal < 150 MB). LAMINA_BENCH_DIRS changes the
// number of folders (100 files each).
func BenchmarkDaemonRSS(b *testing.B) {
	nDirs := 1000
	if s := os.Getenv("LAMINA_BENCH_DIRS"); s != "" {
		nDirs, _ = strconv.Atoi(s)
	}
	e := newMntEnv(b)
	var info struct{ Catalog string }
	if err := json.Unmarshal([]byte(e.ok("info", "--format", "json")), &info); err != nil {
		b.Fatal(err)
	}
	cat, err := catalog.OpenBolt(info.Catalog, catalog.BoltOptions{Hold: true})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for d := 0; d < nDirs; d += 100 {
		var nvs []catalog.NewVersion
		for dd := d; dd < min(nDirs, d+100); dd++ {
			for f := 0; f < 100; f++ {
				nvs = append(nvs, catalog.NewVersion{Key: fmt.Sprintf("d%04d/f%03d.csv", dd, f), Kind: "file",
					Size: int64(1000 + f), CreatedBy: "bench", CreatedAt: now, Mtime: now})
			}
		}
		if _, err := cat.Save(context.Background(), nvs); err != nil {
			b.Fatal(err)
		}
	}
	cat.Close()

	for i := 0; i < b.N; i++ {
		mnt := filepath.Join(e.dir, fmt.Sprintf("lab%d", i))
		e.mount(mnt)
		var st []struct {
			PID int `json:"pid"`
		}
		if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) == 0 {
			b.Fatalf("status: %v %v", st, err)
		}
		for _, tool := range [][]string{{"find", mnt, "-type", "f"}, {"ls", "-lR", mnt}} {
			start := time.Now()
			cmd := exec.Command(tool[0], tool[1:]...)
			cmd.Stdout = io.Discard
			if err := cmd.Run(); err != nil {
				b.Fatalf("%s: %v", tool[0], err)
			}
			b.Logf("%s over %d artifacts: %.2f s", tool[0], nDirs*100, time.Since(start).Seconds())
		}
		hwm := procStatus(b, st[0].PID, "VmHWM")
		b.Logf("daemon peak RSS (VmHWM) with %d artifacts listed: %.1f MB; now anonymous %.1f MB, file-backed %.1f MB (the catalog's mmap)",
			nDirs*100, float64(hwm)/1e6, float64(procStatus(b, st[0].PID, "RssAnon"))/1e6, float64(procStatus(b, st[0].PID, "RssFile"))/1e6)
		b.ReportMetric(float64(hwm)/1e6, "daemon_peak_RSS_MB")
		e.ok("umount", mnt)
	}
}

// procStatus is a size field of /proc/PID/status (VmHWM: peak resident set) in bytes.
func procStatus(tb testing.TB, pid int, field string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	tb.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
