package main

// The S3 benchmarks of issue 8 (docs/s3-bench.md records the figures):
// Lamina on an S3 server on 127.0.0.1 against direct parallel PUT/GET of
// the same bytes, and against `rclone mount --vfs-cache-mode full` and
// `s3fs` on the same server and bytes. They need root (mounts, dropping the
// page cache) and run only when named:
//
//	go run ./bench -lamina bin/lamina -only s3save,s3read,s3mmap,s3small,s3dedup
//
// The server is LAMINA_S3_ENDPOINT (with LAMINA_S3_ACCESS_KEY and
// LAMINA_S3_SECRET_KEY) or a versitygw this command starts (see
// storage/s3/s3test). rclone and s3fs are Debian packages; a peer that is
// not installed is reported as missing, not guessed.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/lamina-bio/lamina/storage"
	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
	"golang.org/x/sync/errgroup"
)

var (
	s3once sync.Once
	s3srv  s3test.Server
)

// server returns the S3 server of this run, starting versitygw if needed.
func server() s3test.Server {
	s3once.Do(func() {
		if ep := os.Getenv("LAMINA_S3_ENDPOINT"); ep != "" {
			s3srv = s3test.Server{Endpoint: ep, AccessKey: os.Getenv("LAMINA_S3_ACCESS_KEY"), SecretKey: os.Getenv("LAMINA_S3_SECRET_KEY")}
			return
		}
		bin := os.Getenv("LAMINA_VERSITYGW")
		if bin == "" {
			bin, _ = exec.LookPath("versitygw")
		}
		if bin == "" {
			home, _ := os.UserHomeDir()
			bin = filepath.Join(home, ".cache/lamina-ci/bin/versitygw")
		}
		srv, stop, err := s3test.StartVersity(bin)
		check(err)
		atExit = append(atExit, stop)
		s3srv = srv
	})
	return s3srv
}

var atExit []func()

func newBucket() string {
	srv := server()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "bench-" + hex.EncodeToString(b[:])
	cl := awss3.New(awss3.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, "")})
	_, err := cl.CreateBucket(context.Background(), &awss3.CreateBucketInput{Bucket: aws.String(name)})
	check(err)
	return name
}

// direct opens the bucket with the backend Lamina uses: the baselines pay
// the same signing and the same checksum (CRC32C) as Lamina does.
func direct(bucket string) *s3b.Backend {
	b, err := s3b.Open(context.Background(), server().Config(bucket))
	check(err)
	return b
}

// s3env is env plus the S3 credentials in the standard variables.
func s3env(d string) []string {
	srv := server()
	return append(env(d), "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey)
}

func runS3(d string, args ...string) (time.Duration, string) { return runS3To(d, nil, args...) }

// runS3To runs lamina with its stdout going to stdout (nil: kept for the
// error message with stderr).
func runS3To(d string, stdout io.Writer, args ...string) (time.Duration, string) {
	cmd := exec.Command(*lamina, args...)
	cmd.Env = s3env(d)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if stdout != nil {
		cmd.Stdout = stdout
	}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		check(fmt.Errorf("lamina %s: %v\n%s", strings.Join(args, " "), err, out.String()))
	}
	return time.Since(start), out.String()
}

// s3Instance makes an instance on a new bucket and returns its folder and
// the bucket.
func s3Instance(name string) (string, string) {
	d := filepath.Join(*dir, name)
	check(os.MkdirAll(d, 0o755))
	bucket := newBucket()
	runS3(d, "init", "--storage", "s3://"+bucket+"/lamina", "--name", "bench", "--endpoint", server().Endpoint, "--region", "us-east-1", "--path-style")
	return d, bucket
}

func randomFile(p string, n int, seed uint64) []byte {
	r := mrand.New(mrand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	writeFile(p, b)
	return b
}

func dropCaches() {
	syncAll()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200); err != nil {
		check(fmt.Errorf("dropping the page cache needs root: %w", err))
	}
}

// parts are the 16 MiB pieces of the baseline objects.
const part = 16 << 20

// directPut stores data as 16 MiB objects, 8 in flight.
func directPut(b *s3b.Backend, prefix string, data []byte) time.Duration {
	ctx := context.Background()
	start := time.Now()
	g := errgroup.Group{}
	g.SetLimit(8)
	for off := 0; off < len(data); off += part {
		g.Go(func() error {
			return b.Put(ctx, fmt.Sprintf("%s/%d", prefix, off/part), data[off:min(off+part, len(data))])
		})
	}
	check(g.Wait())
	return time.Since(start)
}

// directGet reads them back, 8 in flight.
func directGet(b *s3b.Backend, prefix string, n int) time.Duration {
	ctx := context.Background()
	start := time.Now()
	g := errgroup.Group{}
	g.SetLimit(8)
	for off := 0; off < n; off += part {
		g.Go(func() error {
			_, err := b.GetRange(ctx, fmt.Sprintf("%s/%d", prefix, off/part), 0, int64(min(part, n-off)))
			return err
		})
	}
	check(g.Wait())
	return time.Since(start)
}

func mbps(n int, t time.Duration) float64 { return float64(n) / (1 << 20) / t.Seconds() }

// benchS3Save: `lamina save` of a 1 GiB random file against a direct
// parallel PUT of the same bytes (best of 3 each).
func benchS3Save() {
	n := (1 << 30) / *scale
	var laBest, putBest time.Duration
	for i := 0; i < 3; i++ {
		d, bucket := s3Instance(fmt.Sprintf("s3save%d", i))
		src := filepath.Join(d, "big.bin")
		data := randomFile(src, n, uint64(10+i))
		b := direct(bucket)
		if t := directPut(b, "direct", data); putBest == 0 || t < putBest {
			putBest = t
		}
		t, _ := runS3(d, "save", src, "--key", "big.bin")
		if laBest == 0 || t < laBest {
			laBest = t
		}
		os.RemoveAll(d)
	}
	results = append(results, result{
		fmt.Sprintf("S3: save %d MiB random file (best of 3, process wall time)", n>>20),
		fmt.Sprintf("%.0f MiB/s", mbps(n, laBest)), fmt.Sprintf("direct PUT 16 MiB × 8 parallel %.0f MiB/s", mbps(n, putBest)),
		fmt.Sprintf("%.2f", putBest.Seconds()/laBest.Seconds()), "≥ 0.8"})
}

// mounted waits until dir is a mount point (a peer's daemon started).
func mounted(dir string) bool {
	for i := 0; i < 200; i++ {
		b, _ := os.ReadFile("/proc/self/mountinfo")
		if strings.Contains(string(b), " "+dir+" ") {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func unmountPeer(dir string) {
	for i := 0; i < 50; i++ {
		if exec.Command("fusermount3", "-u", dir).Run() == nil || exec.Command("umount", dir).Run() == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	exec.Command("umount", "-l", dir).Run()
}

// peer is a FUSE mount of a bucket by another tool.
type peer struct {
	name  string
	mount func(bucket, dir, scratch string) (*exec.Cmd, error)
}

var peers = []peer{
	{"rclone mount --vfs-cache-mode full", func(bucket, dir, scratch string) (*exec.Cmd, error) {
		srv := server()
		cmd := exec.Command("rclone", "mount", "s3b:"+bucket, dir, "--vfs-cache-mode", "full", "--cache-dir", filepath.Join(scratch, "rclone-cache"))
		// rclone 1.60 refuses to start with AWS_CA_BUNDLE set (measured.md).
		cmd.Env = append(withoutEnv("AWS_CA_BUNDLE"), "RCLONE_CONFIG_S3B_TYPE=s3", "RCLONE_CONFIG_S3B_PROVIDER=Other",
			"RCLONE_CONFIG_S3B_ENDPOINT="+srv.Endpoint, "RCLONE_CONFIG_S3B_ACCESS_KEY_ID="+srv.AccessKey,
			"RCLONE_CONFIG_S3B_SECRET_ACCESS_KEY="+srv.SecretKey, "RCLONE_CONFIG_S3B_REGION=us-east-1", "RCLONE_CONFIG=/dev/null")
		return cmd, cmd.Start()
	}},
	{"s3fs", func(bucket, dir, scratch string) (*exec.Cmd, error) {
		srv := server()
		pw := filepath.Join(scratch, "s3fs.passwd")
		check(os.WriteFile(pw, []byte(srv.AccessKey+":"+srv.SecretKey+"\n"), 0o600))
		cmd := exec.Command("s3fs", bucket, dir, "-f", "-o", "url="+srv.Endpoint, "-o", "use_path_request_style",
			"-o", "passwd_file="+pw, "-o", "endpoint=us-east-1")
		cmd.Env = withoutEnv("AWS_CA_BUNDLE")
		return cmd, cmd.Start()
	}},
}

func withoutEnv(name string) []string {
	var out []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}

// withPeer mounts bucket with p, runs fn on the mount point, unmounts.
func withPeer(p peer, bucket string, fn func(dir string)) error {
	tool := strings.Fields(p.name)[0]
	if _, err := exec.LookPath(tool); err != nil {
		return fmt.Errorf("%s is not installed (apt-get install %s)", tool, tool)
	}
	scratch, err := os.MkdirTemp(*dir, tool+"-")
	check(err)
	defer os.RemoveAll(scratch)
	mnt := filepath.Join(scratch, "mnt")
	check(os.MkdirAll(mnt, 0o755))
	cmd, err := p.mount(bucket, mnt, scratch)
	if err != nil {
		return err
	}
	defer func() { unmountPeer(mnt); cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	if !mounted(mnt) {
		return fmt.Errorf("%s did not mount within 10 s", tool)
	}
	fn(mnt)
	return nil
}

// withLamina mounts the instance in d cold (disk cache cleared, page cache
// dropped), runs fn on the mount point, unmounts.
func withLamina(d string, fn func(dir string)) {
	mnt := filepath.Join(d, "mnt")
	check(os.MkdirAll(mnt, 0o755))
	runS3(d, "cache", "clear")
	runS3(d, "mount", mnt)
	defer runS3(d, "umount", mnt)
	dropCaches()
	fn(mnt)
}

func readAll(p string) int64 {
	f, err := os.Open(p)
	check(err)
	defer f.Close()
	n, err := io.CopyBuffer(io.Discard, f, make([]byte, 1<<20))
	check(err)
	return n
}

// benchS3Read: cold sequential read of 1 GiB through the Lamina mount,
// `lamina get`, rclone mount and s3fs, against a direct parallel GET of the
// same bytes from the same server.
func benchS3Read() {
	n := (1 << 30) / *scale
	d, bucket := s3Instance("s3read")
	src := filepath.Join(d, "big.bin")
	data := randomFile(src, n, 20)
	runS3(d, "save", src, "--key", "big.bin")
	b := direct(bucket)
	// The peers read the same bytes as one object, and the baseline as
	// 16 MiB objects (what a parallel reader of S3 would fetch).
	check(b.Put(context.Background(), "peers/big.bin", data))
	directPut(b, "direct", data)
	data = nil
	os.Remove(src)
	// Every read below starts with the page cache dropped, the server's
	// files included: so does the baseline. (The server-warm figure is
	// shown beside it.)
	var getBest, warmBest time.Duration
	for i := 0; i < 3; i++ {
		dropCaches()
		if t := directGet(b, "direct", n); getBest == 0 || t < getBest {
			getBest = t
		}
		if t := directGet(b, "direct", n); warmBest == 0 || t < warmBest {
			warmBest = t
		}
	}
	base := mbps(n, getBest)
	results = append(results, result{fmt.Sprintf("S3: direct GET %d MiB, 16 MiB × 8 parallel, server's page cache warm", n>>20),
		fmt.Sprintf("%.0f MiB/s", mbps(n, warmBest)), "", "", ""})
	add := func(name string, t time.Duration, ratioTo float64, goal string) {
		v := mbps(n, t)
		results = append(results, result{fmt.Sprintf("S3: cold read %d MiB, %s", n>>20, name), fmt.Sprintf("%.0f MiB/s", v),
			fmt.Sprintf("direct GET 16 MiB × 8 parallel %.0f MiB/s", base), fmt.Sprintf("%.2f", v/ratioTo), goal})
	}
	var mountT []time.Duration
	for i := 0; i < 3; i++ {
		withLamina(d, func(mnt string) {
			start := time.Now()
			if got := readAll(filepath.Join(mnt, "big.bin")); got != int64(n) {
				check(fmt.Errorf("read %d bytes through the mount, want %d", got, n))
			}
			mountT = append(mountT, time.Since(start))
		})
	}
	lm := median(mountT)
	add("lamina mount (median of 3)", lm, base, "≥ 0.9")
	runS3(d, "cache", "clear")
	dropCaches()
	t, _ := runS3To(d, io.Discard, "get", "big.bin", "-o", "-")
	add("lamina get (process wall time)", t, base, "")
	best := 0.0
	for _, p := range peers {
		var ts []time.Duration
		for i := 0; i < 3; i++ {
			dropCaches()
			err := withPeer(p, bucket, func(mnt string) {
				start := time.Now()
				readAll(filepath.Join(mnt, "peers", "big.bin"))
				ts = append(ts, time.Since(start))
			})
			if err != nil {
				results = append(results, result{"S3: cold read, " + p.name, "not run: " + err.Error(), "", "", ""})
				break
			}
		}
		if len(ts) == 3 {
			v := mbps(n, median(ts))
			best = max(best, v)
			add(p.name+" (median of 3)", median(ts), base, "")
		}
	}
	if best > 0 {
		results = append(results, result{"S3: cold read, lamina mount / the faster peer", fmt.Sprintf("%.0f MiB/s", mbps(n, lm)),
			fmt.Sprintf("%.0f MiB/s", best), fmt.Sprintf("%.2f", mbps(n, lm)/best), "≥ 1.5"})
	}
}

// benchS3Mmap: bytes fetched from S3 by 100 random 4 KiB reads of a cold
// 1 GiB version through a memory map (each page fault reads the mount's
// readahead window around it), against pread of the same offsets (one
// 4 MiB cache block a read at most). docs/mount-bench.md, "Readahead and
// memory maps".
func benchS3Mmap() {
	n := (1 << 30) / *scale
	d, _ := s3Instance("s3mmap")
	src := filepath.Join(d, "big.bin")
	randomFile(src, n, 21)
	runS3(d, "save", src, "--key", "big.bin")
	os.Remove(src)
	r := mrand.New(mrand.NewPCG(7, 7))
	offs := make([]int64, 100)
	for i := range offs {
		offs[i] = r.Int64N(int64(n)/4096) * 4096
	}
	fetched := func(mmap bool) (int64, time.Duration) {
		var got int64
		var t time.Duration
		withLamina(d, func(mnt string) {
			f, err := os.Open(filepath.Join(mnt, "big.bin"))
			check(err)
			defer f.Close()
			start := time.Now()
			if mmap {
				m, err := syscall.Mmap(int(f.Fd()), 0, n, syscall.PROT_READ, syscall.MAP_SHARED)
				check(err)
				var sum byte
				for _, o := range offs {
					for _, b := range m[o : o+4096] {
						sum += b
					}
				}
				check(syscall.Munmap(m))
				runtime.KeepAlive(sum) // the loads must happen
			} else {
				buf := make([]byte, 4096)
				for _, o := range offs {
					_, err := f.ReadAt(buf, o)
					check(err)
				}
			}
			t = time.Since(start)
			time.Sleep(time.Second) // the read-around of the last faults
			_, out := runS3(d, "status", "--format", "json")
			var st []struct {
				DiskCache struct {
					Fetched int64 `json:"fetched_bytes"`
				} `json:"disk_cache"`
			}
			check(json.Unmarshal([]byte(out), &st))
			if len(st) != 1 {
				check(fmt.Errorf("lamina status: %d mounts, want 1", len(st)))
			}
			got = st[0].DiskCache.Fetched
		})
		return got, t
	}
	mm, mt := fetched(true)
	pr, pt := fetched(false)
	results = append(results, result{fmt.Sprintf("S3: 100 random 4 KiB reads of %d MiB through a memory map, cold: fetched (time)", n>>20),
		fmt.Sprintf("%d MiB (%.1f s)", mm>>20, mt.Seconds()), fmt.Sprintf("pread of the same offsets: %d MiB (%.1f s)", pr>>20, pt.Seconds()),
		fmt.Sprintf("%.2f", float64(mm)/float64(pr)), "≤ 1.5"})
}

// benchS3Small: cold reads of 10,000 files of 4 KiB in 100 folders, by
// path (open, read, close; one at a time and 8 at a time), through the
// Lamina mount, rclone mount and s3fs.
func benchS3Small() {
	count := 10000 / *scale
	d, bucket := s3Instance("s3small")
	src := filepath.Join(d, "files")
	r := mrand.New(mrand.NewPCG(5, 5))
	b := direct(bucket)
	var rel []string
	byDir := map[string][]string{}
	g := errgroup.Group{}
	g.SetLimit(16)
	for i := 0; i < count; i++ {
		buf := make([]byte, 4096)
		for j := range buf {
			buf[j] = byte(r.Uint32())
		}
		sub := fmt.Sprintf("d%02d", i%100)
		name := fmt.Sprintf("f%05d.bin", i)
		p := filepath.Join(src, sub, name)
		check(os.MkdirAll(filepath.Dir(p), 0o755))
		writeFile(p, buf)
		rel = append(rel, sub+"/"+name)
		byDir[sub] = append(byDir[sub], p)
		g.Go(func() error { return b.Put(context.Background(), "small/"+sub+"/"+name, buf) })
	}
	check(g.Wait())
	for sub, ps := range byDir {
		runS3(d, append(append([]string{"save"}, ps...), "--key-prefix", "small/"+sub+"/")...)
	}
	os.RemoveAll(src)
	readFiles := func(root string, par int) time.Duration {
		start := time.Now()
		g := errgroup.Group{}
		g.SetLimit(par)
		for _, p := range rel {
			g.Go(func() error {
				b, err := os.ReadFile(filepath.Join(root, p))
				if err == nil && len(b) != 4096 {
					err = fmt.Errorf("%s: %d bytes", p, len(b))
				}
				return err
			})
		}
		check(g.Wait())
		return time.Since(start)
	}
	type fig struct{ serial, par float64 }
	figs := map[string]fig{}
	measure := func(name string, with func(func(string)) error) {
		var f fig
		for _, par := range []int{1, 8} {
			err := with(func(mnt string) {
				t := readFiles(filepath.Join(mnt, "small"), par)
				if par == 1 {
					f.serial = float64(count) / t.Seconds()
				} else {
					f.par = float64(count) / t.Seconds()
				}
			})
			if err != nil {
				results = append(results, result{"S3: cold reads of 4 KiB files, " + name, "not run: " + err.Error(), "", "", ""})
				return
			}
		}
		figs[name] = f
	}
	measure("lamina mount", func(fn func(string)) error { withLamina(d, fn); return nil })
	for _, p := range peers {
		measure(p.name, func(fn func(string)) error { dropCaches(); return withPeer(p, bucket, fn) })
	}
	la := figs["lamina mount"]
	var peerBest fig
	for _, p := range peers {
		if f, ok := figs[p.name]; ok {
			results = append(results, result{fmt.Sprintf("S3: cold reads of %d × 4 KiB files, %s", count, p.name),
				fmt.Sprintf("%.0f files/s serial, %.0f 8-parallel", f.serial, f.par), "", "", ""})
			peerBest.serial, peerBest.par = max(peerBest.serial, f.serial), max(peerBest.par, f.par)
		}
	}
	ratio := ""
	if peerBest.serial > 0 {
		ratio = fmt.Sprintf("%.1f serial, %.1f 8-parallel", la.serial/peerBest.serial, la.par/peerBest.par)
	}
	results = append(results, result{fmt.Sprintf("S3: cold reads of %d × 4 KiB files in 100 folders, lamina mount / the faster peer", count),
		fmt.Sprintf("%.0f files/s serial, %.0f 8-parallel", la.serial, la.par),
		fmt.Sprintf("%.0f serial, %.0f 8-parallel", peerBest.serial, peerBest.par), ratio, "≥ 2"})
}

// benchS3Dedup: bytes in the bucket after 10 versions of a 1 GiB file,
// each changing 1% (the edit generator of the foundation's dedup bench).
func benchS3Dedup() {
	n := (1 << 30) / *scale
	d, bucket := s3Instance("s3dedup")
	src := filepath.Join(d, "v.bin")
	r := mrand.New(mrand.NewPCG(3, 3))
	v := randomFile(src, n, 30)
	changed := 0
	for i := 0; i < 10; i++ {
		if i > 0 {
			var c int
			v, c = edit(v, r, false)
			changed += c
			writeFile(src, v)
		}
		runS3(d, "save", src, "--key", "versions/v.bin")
	}
	var stored int64
	check(direct(bucket).List(context.Background(), "", func(i storage.Info) error { stored += i.Size; return nil }))
	results = append(results, result{
		fmt.Sprintf("S3: bytes in the bucket, 10 versions of a %d MiB file, 1%% scattered edits each", n>>20),
		fmt.Sprintf("%.2f GiB", float64(stored)/(1<<30)), fmt.Sprintf("%.2f GiB (size + changed)", float64(n+changed)/(1<<30)),
		fmt.Sprintf("%.2f", float64(stored)/float64(n+changed)), "≤ 1.3 GiB"})
}
