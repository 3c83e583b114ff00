// Command bench runs the foundation's benchmarks against their baselines in
// the same run and prints a Markdown table (BENCHMARKS.md records it).
//
//	go run ./bench -lamina bin/lamina [-dir /tmp/lamina-bench] [-only name,...]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/storage"
)

var (
	lamina = flag.String("lamina", "bin/lamina", "the lamina binary")
	dir    = flag.String("dir", filepath.Join(os.TempDir(), "lamina-bench"), "scratch folder (same file system as the baselines)")
	only   = flag.String("only", "", "comma-separated benchmarks to run (default all)")
	scale  = flag.Int("scale", 1, "divide sizes by this (a quick smoke run)")
)

type result struct{ name, value, baseline, ratio, goal string }

var results []result

func main() {
	flag.Parse()
	abs, err := filepath.Abs(*lamina)
	check(err)
	*lamina = abs
	os.RemoveAll(*dir)
	check(os.MkdirAll(*dir, 0o755))
	defer os.RemoveAll(*dir)
	benches := []struct {
		name string
		fn   func()
	}{
		{"save1g", benchSave1G},
		{"dedup", benchDedup},
		{"chunksizes", benchChunkSizes},
		{"smallfiles", benchSmallFiles},
		{"ls100k", benchLs100k},
		{"startup", benchStartup},
		// S3 (s3.go): run only when named, e.g. -only s3save,s3read.
		{"s3save", benchS3Save},
		{"s3read", benchS3Read},
		{"s3mmap", benchS3Mmap},
		{"s3small", benchS3Small},
		{"s3dedup", benchS3Dedup},
	}
	for _, b := range benches {
		if *only == "" && strings.HasPrefix(b.name, "s3") {
			continue
		}
		if *only != "" && !strings.Contains(","+*only+",", ","+b.name+",") {
			continue
		}
		fmt.Fprintf(os.Stderr, "running %s…\n", b.name)
		b.fn()
	}
	fmt.Println("| benchmark | lamina | baseline | ratio | goal |")
	fmt.Println("|---|---:|---:|---:|---|")
	for _, r := range results {
		fmt.Printf("| %s | %s | %s | %s | %s |\n", r.name, r.value, r.baseline, r.ratio, r.goal)
	}
	for _, f := range atExit {
		f()
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// env is an isolated lamina user rooted at d.
func env(d string) []string {
	return append(os.Environ(), "HOME="+d+"/home", "XDG_CONFIG_HOME="+d+"/config", "XDG_DATA_HOME="+d+"/data",
		"XDG_CACHE_HOME="+d+"/cache", "XDG_RUNTIME_DIR="+d+"/run", "LAMINA_INSTANCE=", "LAMINA_NO_PROGRESS=1")
}

func run(d string, args ...string) time.Duration {
	cmd := exec.Command(*lamina, args...)
	cmd.Env = env(d)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		check(fmt.Errorf("lamina %s: %v\n%s", strings.Join(args, " "), err, out.String()))
	}
	return time.Since(start)
}

func newInstance(name string) string {
	d := filepath.Join(*dir, name)
	check(os.MkdirAll(d, 0o755))
	run(d, "init", "--storage", filepath.Join(d, "storage"), "--name", "bench")
	return d
}

func syncAll() { exec.Command("sync").Run() }

// mixed returns n bytes: the first half random, the second CSV-like text.
func mixed(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, 0, n)
	for len(b) < n/2 {
		b = append(b, byte(r.Uint32()))
	}
	genes := []string{"CD3E", "CD4", "CD8A", "MS4A1", "LYZ", "NKG7", "GNLY", "PPBP"}
	for len(b) < n {
		b = fmt.Appendf(b, "cell_%d,%s,%d,%.4f\n", r.IntN(1e6), genes[r.IntN(len(genes))], r.IntN(500), r.Float64())
	}
	return b[:n]
}

func writeFile(p string, b []byte) {
	check(os.WriteFile(p, b, 0o644))
}

func benchSave1G() {
	n := (1 << 30) / *scale
	d := newInstance("save1g")
	src := filepath.Join(d, "big.bin")
	writeFile(src, mixed(n, 1))
	syncAll()
	var cpBest, laBest time.Duration
	for i := 0; i < 3; i++ {
		dst := filepath.Join(d, fmt.Sprintf("copy%d", i))
		start := time.Now()
		c := exec.Command("sh", "-c", "cp "+src+" "+dst+" && sync")
		check(c.Run())
		t := time.Since(start)
		if cpBest == 0 || t < cpBest {
			cpBest = t
		}
		os.Remove(dst)
		syncAll()
		t = run(d, "save", src, "--key", fmt.Sprintf("big%d.bin", i))
		if laBest == 0 || t < laBest {
			laBest = t
		}
		// Each run must store every chunk anew: remove them.
		os.RemoveAll(filepath.Join(d, "storage", "chunks"))
		syncAll()
	}
	mb := float64(n) / 1e6
	results = append(results, result{
		fmt.Sprintf("save %d MiB mixed file (best of 3)", n>>20),
		fmt.Sprintf("%.0f MB/s", mb/laBest.Seconds()), fmt.Sprintf("cp+sync %.0f MB/s", mb/cpBest.Seconds()),
		fmt.Sprintf("%.2f", cpBest.Seconds()/laBest.Seconds()), "≥ 0.5"})
}

// edit changes about 1% of b at scattered places: overwrites, inserts and
// deletes of 64 to 256 KiB each (about 16 places in 256 MiB), as when some
// cells or columns of a dataset change. It returns the new bytes and how many
// changed. fine makes the edits 1 to 9 KiB instead (hundreds of places): the
// worst case for any chunk size, reported beside it.
func edit(b []byte, r *rand.Rand, fine bool) ([]byte, int) {
	budget := len(b) / 100
	changed := 0
	out := append([]byte(nil), b...)
	for changed < budget {
		size := 64<<10 + r.IntN(192<<10)
		if fine {
			size = 1024 + r.IntN(8192)
		}
		size = min(size, budget-changed+1024)
		pos := r.IntN(len(out) - size)
		patch := make([]byte, size)
		for i := range patch {
			patch[i] = byte(r.Uint32())
		}
		switch r.IntN(3) {
		case 0: // overwrite
			copy(out[pos:], patch)
		case 1: // insert
			out = append(out[:pos], append(patch, out[pos:]...)...)
		case 2: // delete
			out = append(out[:pos], out[pos+size:]...)
		}
		changed += size
	}
	return out, changed
}

func storedBytes(root string) int64 {
	var n int64
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if i, err := d.Info(); err == nil {
				n += i.Size()
			}
		}
		return nil
	})
	return n
}

func tenVersions(n int, fine bool) ([][]byte, int) {
	r := rand.New(rand.NewPCG(3, 3))
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(r.Uint32())
	}
	vs := [][]byte{v}
	total := 0
	for i := 1; i < 10; i++ {
		next, c := edit(vs[i-1], r, fine)
		vs = append(vs, next)
		total += c
	}
	return vs, total
}

func benchDedup() {
	n := (256 << 20) / *scale
	d := newInstance("dedup")
	vs, changed := tenVersions(n, false)
	src := filepath.Join(d, "v.bin")
	for _, v := range vs {
		writeFile(src, v)
		run(d, "save", src, "--key", "versions/v.bin")
	}
	st := storedBytes(filepath.Join(d, "storage"))
	ratio := float64(st) / float64(n+changed)
	results = append(results, result{
		fmt.Sprintf("10 versions of a %d MiB file, 1%% scattered edits each", n>>20),
		fmt.Sprintf("%.1f MiB stored", float64(st)/(1<<20)), fmt.Sprintf("%.1f MiB (size + changed)", float64(n+changed)/(1<<20)),
		fmt.Sprintf("%.2f", ratio), "≤ 1.3 (whole-file versioning: ~10)"})
}

// benchChunkSizes is the measurement behind cache.DefaultParams: dedup ratio
// and single-stream chunk+hash+compress throughput for candidate sizes.
func benchChunkSizes() {
	n := (256 << 20) / *scale
	vs, changed := tenVersions(n, false)
	fine, fineChanged := tenVersions(n, true)
	mix := mixed(n, 9)
	for _, p := range []cache.Params{
		{Min: 8 << 10, Avg: 32 << 10, Max: 128 << 10},
		{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10},
		{Min: 64 << 10, Avg: 256 << 10, Max: 1 << 20},
		{Min: 256 << 10, Avg: 1 << 20, Max: 4 << 20},
	} {
		root := filepath.Join(*dir, fmt.Sprintf("cs-%d", p.Avg))
		b, err := storage.CreateLocal(root)
		check(err)
		s, err := cache.NewStore(b, root+"-index.db", p)
		check(err)
		ctx := context.Background()
		for _, v := range vs {
			w := s.NewWriter()
			_, _, err := w.PutFile(ctx, bytes.NewReader(v), nil)
			check(err)
			check(w.Commit(ctx))
		}
		ratio := float64(storedBytes(root)) / float64(n+changed)
		os.RemoveAll(root)
		os.Remove(root + "-index.db")
		b, _ = storage.CreateLocal(root)
		s, _ = cache.NewStore(b, root+"-index.db", p)
		for _, v := range fine {
			w := s.NewWriter()
			_, _, err := w.PutFile(ctx, bytes.NewReader(v), nil)
			check(err)
			check(w.Commit(ctx))
		}
		fineRatio := float64(storedBytes(root)) / float64(n+fineChanged)
		os.RemoveAll(root)
		os.Remove(root + "-index.db")
		b, _ = storage.CreateLocal(root)
		s, _ = cache.NewStore(b, root+"-index.db", p)
		start := time.Now()
		w := s.NewWriter()
		_, _, err = w.PutFile(ctx, bytes.NewReader(mix), nil)
		check(err)
		check(w.Commit(ctx))
		t := time.Since(start)
		os.RemoveAll(root)
		os.Remove(root + "-index.db")
		results = append(results, result{
			fmt.Sprintf("chunk sizes %d/%d/%d KiB: dedup ratio; store speed of mixed data", p.Min>>10, p.Avg>>10, p.Max>>10),
			fmt.Sprintf("ratio %.2f (1–9 KiB edits: %.2f)", ratio, fineRatio), "", fmt.Sprintf("%.0f MB/s", float64(n)/1e6/t.Seconds()), "(choice of DefaultParams)"})
	}
}

func benchSmallFiles() {
	count := 10000 / *scale
	d := newInstance("small")
	src := filepath.Join(d, "files")
	check(os.MkdirAll(src, 0o755))
	r := rand.New(rand.NewPCG(5, 5))
	var paths []string
	for i := 0; i < count; i++ {
		b := make([]byte, 4096)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		p := filepath.Join(src, fmt.Sprintf("f%05d.bin", i))
		writeFile(p, b)
		paths = append(paths, p)
	}
	syncAll()
	t := run(d, append(append([]string{"save"}, paths...), "--key-prefix", "small/")...)
	results = append(results, result{
		fmt.Sprintf("%d files of 4 KiB in one save --key-prefix", count),
		fmt.Sprintf("%.0f files/s", float64(count)/t.Seconds()), "", "", "≥ 2,000 files/s"})
}

func median(ts []time.Duration) time.Duration {
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts[len(ts)/2]
}

func benchLs100k() {
	count := 100000 / *scale
	d := newInstance("ls")
	// Fill the catalog directly: this measures listing, not saving.
	cat, err := catalog.OpenBolt(filepath.Join(d, "data", "lamina", "bench", "catalog.db"), catalog.BoltOptions{})
	check(err)
	now := time.Now()
	for batch := 0; batch < count; batch += 5000 {
		var nvs []catalog.NewVersion
		for i := batch; i < batch+5000 && i < count; i++ {
			key := fmt.Sprintf("project%03d/sample_%06d.h5ad", i%100, i)
			nvs = append(nvs, catalog.NewVersion{Key: key, Kind: "file", Digest: ref.Sum([]byte(key)), Size: int64(i), CreatedBy: "bench", CreatedAt: now, Mtime: now, Suffix: ".h5ad"})
		}
		_, err := cat.Save(context.Background(), nvs)
		check(err)
	}
	cat.Close()
	var ts []time.Duration
	for i := 0; i < 11; i++ {
		ts = append(ts, run(d, "ls", "project042/", "--limit", "1000"))
	}
	results = append(results, result{
		fmt.Sprintf("ls of 1,000 rows under a prefix, %d artifacts (median of 11, process wall time)", count),
		fmt.Sprintf("%.1f ms", float64(median(ts).Microseconds())/1000), "", "", "< 100 ms"})
}

func benchStartup() {
	d := newInstance("startup")
	for _, args := range [][]string{{"--version"}, {"ls"}} {
		var ts []time.Duration
		for i := 0; i < 21; i++ {
			ts = append(ts, run(d, args...))
		}
		results = append(results, result{
			"lamina " + strings.Join(args, " ") + " on an empty instance (median of 21)",
			fmt.Sprintf("%.1f ms", float64(median(ts).Microseconds())/1000), "", "", "< 20 ms"})
	}
}
