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
// number of folders (100 files each); LAMINA_BENCH_BIN runs another build
// of lamina (an older one, to compare back to back). The page cache is
// dropped before the first walk (root only), and the daemon's CPU time for
// each walk is reported: the machine is shared, wall time is noisy.
func BenchmarkDaemonRSS(b *testing.B) {
	nDirs := 1000
	if s := os.Getenv("LAMINA_BENCH_DIRS"); s != "" {
		nDirs, _ = strconv.Atoi(s)
	}
	e := newMntEnv(b)
	if bin := os.Getenv("LAMINA_BENCH_BIN"); bin != "" {
		e.bin = bin
	}
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
		saved, err := cat.Save(context.Background(), nvs)
		if err != nil {
			b.Fatal(err)
		}
		// As after `lamina save`: the records are in storage, the outbox
		// empty. Left full, the daemon's first job would be writing 100,000
		// records, and its peak memory would be that job's.
		uids := make([]string, len(saved))
		for i, s := range saved {
			uids[i] = s.Version.UID
		}
		if err := cat.OutboxDone(context.Background(), uids); err != nil {
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
		pid := st[0].PID
		exec.Command("sync").Run()
		os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
		for _, tool := range [][]string{{"find", mnt, "-type", "f"}, {"ls", "-lR", mnt}} {
			cpu0, flt0 := procCPU(b, pid)
			start := time.Now()
			cmd := exec.Command(tool[0], tool[1:]...)
			cmd.Stdout = io.Discard
			if err := cmd.Run(); err != nil {
				b.Fatalf("%s: %v", tool[0], err)
			}
			wall := time.Since(start).Seconds()
			cpu, flt := procCPU(b, pid)
			cpu -= cpu0
			b.Logf("%s over %d artifacts: %.2f s, daemon CPU %.2f s, daemon major faults %d", tool[0], nDirs*100, wall, cpu, flt-flt0)
			b.ReportMetric(cpu, tool[0]+"_daemon_CPU_s")
		}
		hwm := procStatus(b, st[0].PID, "VmHWM")
		b.Logf("daemon peak RSS (VmHWM) with %d artifacts listed: %.1f MB; now anonymous %.1f MB, file-backed %.1f MB (the catalog's mmap)",
			nDirs*100, float64(hwm)/1e6, float64(procStatus(b, st[0].PID, "RssAnon"))/1e6, float64(procStatus(b, st[0].PID, "RssFile"))/1e6)
		b.ReportMetric(float64(hwm)/1e6, "daemon_peak_RSS_MB")
		cat, bin := mappedRSS(b, pid, info.Catalog), mappedRSS(b, pid, e.bin)
		b.Logf("file-backed now: catalog %.1f MB, lamina binary %.1f MB", float64(cat)/1e6, float64(bin)/1e6)
		if strings.Contains(os.Getenv("GODEBUG"), "gctrace=1") {
			logGCTrace(b, filepath.Join(e.dir, "run"))
		}
		e.ok("umount", mnt)
	}
}

// logGCTrace logs the daemon's last GC lines (GODEBUG=gctrace=1 is passed
// on to it; they go to its mount.log): live heap and heap goal.
func logGCTrace(b *testing.B, runDir string) {
	filepath.WalkDir(runDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Name() != "mount.log" {
			return nil
		}
		raw, _ := os.ReadFile(p)
		var gcs []string
		for _, l := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(l, "gc ") {
				gcs = append(gcs, l)
			}
		}
		b.Logf("daemon: %d GCs; last: %s", len(gcs), strings.Join(gcs[max(0, len(gcs)-3):], " | "))
		return nil
	})
}

// mappedRSS is how much of the file at path is resident in the process's
// mappings of it (/proc/PID/smaps), in bytes.
func mappedRSS(tb testing.TB, pid int, path string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		tb.Fatal(err)
	}
	var total int64
	in := false
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			in = len(f) >= 6 && f[5] == path
		case in && len(f) >= 2 && f[0] == "Rss:":
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			total += kb << 10
		}
	}
	return total
}

// procCPU is the user plus system CPU time of a process so far, in
// seconds, and its major page faults (reads from disk through a mapping:
// here the catalog's).
func procCPU(tb testing.TB, pid int) (float64, int64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name (in parentheses): majflt, utime and
	// stime are the 12th, 14th and 15th of the line; times in clock ticks
	// (100 a second on Linux).
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	majflt, _ := strconv.ParseInt(f[9], 10, 64)
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, majflt
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
