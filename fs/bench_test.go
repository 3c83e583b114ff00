package fs_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	lfs "github.com/lamina-bio/lamina/fs"
)

// The mount benchmarks of issue 3 (`make bench`; docs/mount-bench.md).
// Each reports the mount's figure, the plain local file's, and their ratio.
// Dropping the page cache needs root; without it the "cold" figures are warm.

func dropCaches() {
	exec.Command("sync").Run()
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
}

func readAll(b *testing.B, p string) float64 {
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	n, err := io.CopyBuffer(io.Discard, f, make([]byte, 1<<20))
	if err != nil {
		b.Fatal(err)
	}
	return float64(n) / (1 << 20) / time.Since(start).Seconds()
}

// BenchmarkMountRead: sequential read of a 1 GiB version, cold and warm,
// against a plain local file with the same bytes; then fio randread 4 KiB.
func BenchmarkMountRead(b *testing.B) {
	size := 1 << 30
	if s := os.Getenv("LAMINA_BENCH_SIZE"); s != "" {
		size, _ = strconv.Atoi(s)
	}
	w := newWorldB(b)
	plain := filepath.Join(w.tmp, "plain.bin")
	f, _ := os.Create(plain)
	io.CopyN(f, randReader{}, int64(size))
	f.Close()
	w.saveItem("big.bin", plain)
	w.mount(lfs.MountOptions{})
	mounted := filepath.Join(w.dir, "big.bin")
	for i := 0; i < b.N; i++ {
		dropCaches()
		coldPlain := readAll(b, plain)
		dropCaches()
		coldMount := readAll(b, mounted)
		warmPlain := readAll(b, plain)
		warmMount := readAll(b, mounted)
		b.ReportMetric(coldMount, "cold_MiB/s")
		b.ReportMetric(coldMount/coldPlain, "cold_ratio")
		b.ReportMetric(warmMount, "warm_MiB/s")
		b.ReportMetric(warmMount/warmPlain, "warm_ratio")
		b.Logf("sequential 1 GiB: cold %.0f vs plain %.0f MiB/s (%.2f); warm %.0f vs %.0f MiB/s (%.2f)",
			coldMount, coldPlain, coldMount/coldPlain, warmMount, warmPlain, warmMount/warmPlain)
		if _, err := exec.LookPath("fio"); err == nil {
			ip, im := fioIOPS(b, plain), fioIOPS(b, mounted)
			b.ReportMetric(im, "randread_IOPS")
			b.ReportMetric(im/ip, "randread_ratio")
			b.Logf("fio randread 4 KiB: %.0f vs plain %.0f IOPS (%.2f)", im, ip, im/ip)
		}
	}
}

func fioIOPS(b *testing.B, p string) float64 {
	// The size is given: fio cannot always tell it of a file on a FUSE
	// mount ("you need to specify size=", exit status 4).
	st, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("fio", "--name=r", "--filename="+p, "--readonly", "--rw=randread", "--bs=4k",
		"--size="+strconv.FormatInt(st.Size(), 10),
		"--ioengine=psync", "--numjobs=4", "--group_reporting", "--time_based", "--runtime=10",
		"--output-format=terse", "--terse-version=3")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("fio: %v: %s%s", err, out, stderr.String())
	}
	fields := strings.Split(string(out), ";")
	iops, _ := strconv.ParseFloat(fields[7], 64) // read IOPS in terse v3
	return iops
}

type randReader struct{}

func (randReader) Read(p []byte) (int, error) {
	var x uint64 = uint64(time.Now().UnixNano()) | 1
	for i := range p {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		p[i] = byte(x)
	}
	return len(p), nil
}

// BenchmarkMountList: find and ls -lR over 100,000 artifacts in 1,000
// folders, cold (fresh mount) and warm, against the same tree on local disk.
func BenchmarkMountList(b *testing.B) {
	nDirs, perDir := 1000, 100
	if s := os.Getenv("LAMINA_BENCH_DIRS"); s != "" {
		nDirs, _ = strconv.Atoi(s)
	}
	w := newWorldB(b)
	plain := filepath.Join(w.tmp, "plain")
	var nvs []catalog.NewVersion
	now := time.Now()
	for d := 0; d < nDirs; d++ {
		dir := filepath.Join(plain, fmt.Sprintf("d%04d", d))
		os.MkdirAll(dir, 0o755)
		for f := 0; f < perDir; f++ {
			name := fmt.Sprintf("d%04d/f%03d.csv", d, f)
			os.WriteFile(filepath.Join(plain, name), nil, 0o644)
			nvs = append(nvs, catalog.NewVersion{Key: name, Kind: "file", CreatedAt: now, Mtime: now})
		}
	}
	// In batches: one bbolt transaction of 100,000 new keys grows single
	// nodes without bound, and each insert then moves the rest of one.
	for len(nvs) > 0 {
		n := min(len(nvs), 5000)
		if _, err := w.cat.Save(context.Background(), nvs[:n]); err != nil {
			b.Fatal(err)
		}
		nvs = nvs[n:]
	}
	for _, xattrs := range []bool{true, false} {
		for i := 0; i < b.N; i++ {
			for _, tool := range [][]string{{"find", "-type", "f"}, {"ls", "-lR"}} {
				run := func(dir string) []string {
					return append([]string{tool[0], dir}, tool[1:]...)
				}
				// A fresh mount of a closed catalog: pages this process
				// has mapped would survive drop_caches.
				w.cat.Close()
				dropCaches()
				coldPlain := timeCmd(b, run(plain)...)
				warmPlain := timeCmd(b, run(plain)...)
				w.cat = reopenCatalog(b, w.cat.Path())
				w.mount(lfs.MountOptions{NoXAttrs: !xattrs})
				cpu0 := selfCPU()
				coldMount := timeCmd(b, run(w.dir)...)
				coldCPU := selfCPU() - cpu0
				warmMount := timeCmd(b, run(w.dir)...)
				w.mnt.Unmount()
				label := strings.Join(tool, " ")
				b.Logf("%s (xattrs %v): cold %.3f s vs plain %.3f s (%.2f), serving CPU %.2f s; warm %.3f s vs %.3f s (%.2f)",
					label, xattrs, coldMount, coldPlain, coldMount/coldPlain, coldCPU, warmMount, warmPlain, warmMount/warmPlain)
				if xattrs {
					b.ReportMetric(coldMount/coldPlain, tool[0]+"_cold_ratio")
					b.ReportMetric(warmMount/warmPlain, tool[0]+"_warm_ratio")
				}
			}
		}
	}
	var st struct{ rss int64 }
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				f := strings.Fields(l)
				st.rss, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	b.ReportMetric(float64(st.rss)/1024, "peak_RSS_MiB")
}

// BenchmarkMountListFolder times `ls -l` and `find -type f` of one folder of
// 100 and of 10,000 files, cold (a fresh mount, page cache dropped) and
// warm, against the same folder on the local disk. `ls -l` of a fresh
// mount is the worst case for listings without attributes
// (dirHandle.Lookup): every file of the first folder is one LOOKUP.
func BenchmarkMountListFolder(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			w := newWorldB(b)
			plain := filepath.Join(w.tmp, "plain", "big")
			os.MkdirAll(plain, 0o755)
			var nvs []catalog.NewVersion
			now := time.Now()
			for f := 0; f < n; f++ {
				name := fmt.Sprintf("f%05d.csv", f)
				os.WriteFile(filepath.Join(plain, name), nil, 0o644)
				nvs = append(nvs, catalog.NewVersion{Key: "big/" + name, Kind: "file", CreatedAt: now, Mtime: now})
			}
			if _, err := w.cat.Save(context.Background(), nvs); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				for _, tool := range [][]string{{"ls", "-l"}, {"find", "-type", "f"}} {
					run := func(dir string) []string { return append([]string{tool[0], dir}, tool[1:]...) }
					w.cat.Close()
					dropCaches()
					coldPlain := timeCmd(b, run(plain)...)
					warmPlain := timeCmd(b, run(plain)...)
					w.cat = reopenCatalog(b, w.cat.Path())
					w.mount(lfs.MountOptions{NoXAttrs: true})
					cpu0 := selfCPU()
					coldMount := timeCmd(b, run(filepath.Join(w.dir, "big"))...)
					coldCPU := selfCPU() - cpu0
					warmMount := timeCmd(b, run(filepath.Join(w.dir, "big"))...)
					w.mnt.Unmount()
					b.Logf("%s of %d: cold %.4f s vs plain %.4f s (%.2f), serving CPU %.3f s; warm %.4f s vs %.4f s (%.2f)",
						strings.Join(tool, " "), n, coldMount, coldPlain, coldMount/coldPlain, coldCPU, warmMount, warmPlain, warmMount/warmPlain)
					b.ReportMetric(coldMount/coldPlain, tool[0]+"_cold_ratio")
				}
			}
		})
	}
}

func newWorldB(b *testing.B) *world { return newWorld(b) }

// timeCmd runs a command, its output discarded, and returns its wall time
// in seconds.
func timeCmd(b *testing.B, args ...string) float64 {
	start := time.Now()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		b.Fatalf("%v: %v", args, err)
	}
	return time.Since(start).Seconds()
}

// selfCPU is this process's CPU time so far (user and system), in seconds:
// in these benchmarks, the mount's serving.
func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func reopenCatalog(b *testing.B, path string) *catalog.Bolt {
	cat, err := catalog.OpenBolt(path, catalog.BoltOptions{Hold: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cat.Close() })
	return cat
}
