package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// The benchmarks compare the stores on what a mount does: single lookups,
// a mixed workload, and writers from two mounts at once. For PostgreSQL,
// start a durable cluster (scripts/pgcluster.sh start DIR durable): bbolt
// fsyncs every write, so should the database.

type store struct {
	name string
	// open returns two handles on one catalog, as two mounts have.
	open func(b *testing.B) (catalog.Catalog, catalog.Catalog)
}

func stores(b *testing.B) []store {
	return []store{
		{"bbolt", func(b *testing.B) (catalog.Catalog, catalog.Catalog) {
			p := filepath.Join(b.TempDir(), "catalog.db")
			// Two processes share a bbolt file by taking turns: each call
			// opens (and locks) it.
			x, err := catalog.OpenBolt(p, catalog.BoltOptions{})
			if err != nil {
				b.Fatal(err)
			}
			y, _ := catalog.OpenBolt(p, catalog.BoltOptions{})
			return x, y
		}},
		{"bbolt-held", func(b *testing.B) (catalog.Catalog, catalog.Catalog) {
			// One daemon holding the file: the fastest bbolt gets, but only
			// one process may use it.
			x, err := catalog.OpenBolt(filepath.Join(b.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
			if err != nil {
				b.Fatal(err)
			}
			return x, x
		}},
		{"postgres", func(b *testing.B) (catalog.Catalog, catalog.Catalog) {
			u := pgtest.URL(b)
			x, err := postgres.Open(context.Background(), u, postgres.Options{MaxConns: 16})
			if err != nil {
				b.Fatal(err)
			}
			y, err := postgres.Open(context.Background(), u, postgres.Options{MaxConns: 16})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { x.Close(); y.Close() })
			return x, y
		}},
		{"postgres-cached", func(b *testing.B) (catalog.Catalog, catalog.Catalog) {
			// As a mount daemon runs it: listening, so lookups are cached.
			u := pgtest.URL(b)
			return listeningStore(b, u), listeningStore(b, u)
		}},
	}
}

// listeningStore opens a store on u whose Listen runs until b ends, and
// waits until its lookup cache serves.
func listeningStore(b *testing.B, u string) *postgres.Store {
	s, err := postgres.Open(context.Background(), u, postgres.Options{MaxConns: 16})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Listen(ctx, func([]string) {}); close(done) }()
	b.Cleanup(func() { cancel(); <-done; s.Close() })
	for i := 0; ; i++ {
		if _, _, ok := s.LookupStats(); ok {
			return s
		}
		if i == 400 {
			b.Fatal("the lookup cache never served")
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// reportHits reports the share of lookups the cache of c answered since
// the timer was last reset (cpuMeter's start).
func reportHits(b *testing.B, c catalog.Catalog, m *cpuMeter) {
	if s, ok := c.(*postgres.Store); ok {
		hits, misses, _ := s.LookupStats()
		hits, misses = hits-m.hits, misses-m.misses
		if hits+misses > 0 {
			b.ReportMetric(100*float64(hits)/float64(hits+misses), "hit%")
		}
	}
}

// cpuMeter reports CPU time per op beside the wall time, which on the
// shared 2-core machine mostly measures the load: this process's
// (cpu-us/op) and, for PostgreSQL on this machine, the server's
// (srv-us/op: the postmaster and its children, the benchmark's backends).
type cpuMeter struct {
	postmaster   int // 0: no server to count
	self, server time.Duration
	hits, misses int64 // of the lookup cache, for reportHits
}

func startCPU(b *testing.B, store string, c catalog.Catalog) *cpuMeter {
	m := &cpuMeter{}
	if strings.HasPrefix(store, "postgres") {
		m.postmaster = postmaster(b)
	}
	if s, ok := c.(*postgres.Store); ok {
		m.hits, m.misses, _ = s.LookupStats()
	}
	m.self, m.server = selfCPU(), serverCPU(m.postmaster)
	return m
}

func (m *cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64((selfCPU()-m.self).Microseconds())/float64(b.N), "cpu-us/op")
	if m.postmaster != 0 {
		b.ReportMetric(float64((serverCPU(m.postmaster)-m.server).Microseconds())/float64(b.N), "srv-us/op")
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postmaster is the pid of the local server of LAMINA_PG_URL, or 0.
func postmaster(b *testing.B) int {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, pgtest.Base(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	var pid int
	if err := c.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		b.Fatal(err)
	}
	if ppid, _, ok := procStat(pid); ok {
		return ppid
	}
	return 0 // a server elsewhere
}

// serverCPU is the CPU time of the postmaster and its live children.
func serverCPU(pm int) time.Duration {
	if pm == 0 {
		return 0
	}
	_, total, _ := procStat(pm)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, t, ok := procStat(pid); ok && ppid == pm {
			total += t
		}
	}
	return total
}

// procStat reads a process's parent and CPU time (user + system).
func procStat(pid int) (ppid int, cpu time.Duration, ok bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// Fields after the command (which may hold spaces): state ppid … utime(14) stime(15).
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return ppid, time.Duration(ut+st) * time.Second / clockTicks, true
}

// clockTicks is Linux's USER_HZ, the unit of /proc/PID/stat times.
const clockTicks = 100

func fill(b *testing.B, c catalog.Catalog, n int) {
	ctx := context.Background()
	const batch = 500
	for i := 0; i < n; i += batch {
		var nvs []catalog.NewVersion
		for j := i; j < min(i+batch, n); j++ {
			nvs = append(nvs, catalogtest.NV(fillKey(j), fmt.Sprint(j)))
		}
		if _, err := c.Save(ctx, nvs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkByKey: one lookup of the latest version of a key (a mount's
// stat or open), in a catalog of 10,000 keys.
func BenchmarkByKey(b *testing.B) {
	for _, s := range stores(b) {
		b.Run(s.name, func(b *testing.B) {
			c, _ := s.open(b)
			fill(b, c, 10000)
			ctx := context.Background()
			m := startCPU(b, s.name, c)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.ByKey(ctx, lookupKey(i), 0); err != nil {
					b.Fatal(err)
				}
			}
			m.report(b)
			reportHits(b, c, m)
		})
	}
}

// BenchmarkByKeyWarm is BenchmarkByKey on keys looked up before (a mount
// stat-ing the files it works on again): what a lookup cache answers.
func BenchmarkByKeyWarm(b *testing.B) {
	for _, s := range stores(b) {
		b.Run(s.name, func(b *testing.B) {
			c, _ := s.open(b)
			fill(b, c, 10000)
			ctx := context.Background()
			lookup := func(i int) {
				if _, err := c.ByKey(ctx, lookupKey(i), 0); err != nil {
					b.Fatal(err)
				}
			}
			for i := 0; i < 10000; i++ {
				lookup(i)
			}
			m := startCPU(b, s.name, c)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				lookup(i)
			}
			m.report(b)
			reportHits(b, c, m)
		})
	}
}

// BenchmarkChildren: one folder listing.
func BenchmarkChildren(b *testing.B) {
	for _, s := range stores(b) {
		b.Run(s.name, func(b *testing.B) {
			c, _ := s.open(b)
			fill(b, c, 10000)
			ctx := context.Background()
			m := startCPU(b, s.name, c)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Children(ctx, fmt.Sprintf("d%02d/", i%50)); err != nil {
					b.Fatal(err)
				}
			}
			m.report(b)
			reportHits(b, c, m)
		})
	}
}

// BenchmarkWorkload: the conformance suite's mix, one op = save a new
// version, look it up by key and uid, list its folder, rename, trash.
func BenchmarkWorkload(b *testing.B) {
	for _, s := range stores(b) {
		b.Run(s.name, func(b *testing.B) {
			c, _ := s.open(b)
			fill(b, c, 1000)
			ctx := context.Background()
			m := startCPU(b, s.name, c)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := fmt.Sprintf("w/%d/a.txt", i)
				sv, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV(k, fmt.Sprint(i))})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.ByKey(ctx, k, 0); err != nil {
					b.Fatal(err)
				}
				if _, err := c.ByUID(ctx, sv[0].Version.UID); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Children(ctx, fmt.Sprintf("w/%d/", i)); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Rename(ctx, k, k+".bak"); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Trash(ctx, k+".bak"); err != nil {
					b.Fatal(err)
				}
			}
			m.report(b)
			reportHits(b, c, m)
		})
	}
}

// BenchmarkTwoMountWriters: 8 writers, 4 on each of two handles (two
// mounts), each saving new keys; one op = one save. Reported: saves/s.
func BenchmarkTwoMountWriters(b *testing.B) {
	for _, s := range stores(b) {
		b.Run(s.name, func(b *testing.B) {
			x, y := s.open(b)
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			m := startCPU(b, s.name, x)
			b.ResetTimer()
			for w := 0; w < 8; w++ {
				c := x
				if w%2 == 1 {
					c = y
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						k := fmt.Sprintf("w%d/f%d.txt", w, i)
						if _, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV(k, k)}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
			m.report(b)
		})
	}
}

// BenchmarkQueries100k (LAMINA_QUERIES_N versions instead of 100,000
// if set): the curation issue's query benchmarks
// (catalog/annotate_bench_test.go, docs/annotate-bench.md) on both stores:
// 100,000 versions with 5 feature values, 3 labels and 2 cell-type terms
// each, built once in bbolt (catalogtest.BuildAnnotated) and loaded into
// PostgreSQL (Dump, Load), so both answer the same questions on the same
// records.
func BenchmarkQueries100k(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	path := filepath.Join(dir, "catalog.db")
	start := time.Now()
	n := 100000
	if e, err := strconv.Atoi(os.Getenv("LAMINA_QUERIES_N")); err == nil && e > 0 {
		n = e // a smaller catalog, for profiling
	}
	catalogtest.BuildAnnotated(b, path, n)
	built := time.Since(start)
	src, err := catalog.OpenBolt(path, catalog.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var recs []catalog.Record
	if err := src.Dump(ctx, func(r catalog.Record) error { recs = append(recs, r); return nil }); err != nil {
		b.Fatal(err)
	}
	src.Close()
	u := pgtest.URL(b)
	pg, err := postgres.Open(ctx, u, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer pg.Close()
	start = time.Now()
	if err := pg.Load(ctx, func(yield func(catalog.Record, error) bool) {
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}); err != nil {
		b.Fatal(err)
	}
	b.Logf("built in bbolt in %s, loaded %d records into PostgreSQL in %s", built.Round(time.Second), len(recs), time.Since(start).Round(time.Second))
	pgtest.Exec(b, u, `VACUUM ANALYZE`) // as autovacuum would, after a load
	// A held file is locked for its holder: the held store gets a copy.
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	heldPath := filepath.Join(dir, "held.db")
	if err := os.WriteFile(heldPath, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	held, err := catalog.OpenBolt(heldPath, catalog.BoltOptions{Hold: true})
	if err != nil {
		b.Fatal(err)
	}
	defer held.Close()
	perCall, err := catalog.OpenBolt(path, catalog.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer perCall.Close()
	finds := []struct {
		name string
		f    catalog.Filter
	}{
		{"tissue_and_batch", catalog.Filter{Limit: 1000, Where: []catalog.Cond{
			{Field: "tissue", Op: "=", Values: []string{"bone marrow"}}, {Field: "batch", Op: ">", Values: []string{"3"}}}}},
		{"celltype_T_cell_descendants", catalog.Filter{Limit: 1000, Terms: [][]string{{"CL:0000084", "CL:0000624", "CL:0000625"}}}},
		{"label_and_size", catalog.Filter{Limit: 1000, Labels: []string{"high_quality"}, Where: []catalog.Cond{{Field: "size", Op: ">", Values: []string{"5MB"}}}}},
	}
	// The names CL gives the bench's cell-type terms (it records ids
	// only): the versions with them are found through the term index
	// (catalog/search.go, SearchOptions.TermNames), and with the
	// short word of "T cell" rescored by PhraseRank.
	names := map[string][]string{"CL:0000084": {"T cell"}, "CL:0000624": {"CD4-positive, alpha-beta T cell"},
		"CL:0000625": {"CD8-positive, alpha-beta T cell"}, "CL:0000236": {"B cell"}, "CL:0000576": {"monocyte"},
		"CL:0000623": {"natural killer cell"}, "CL:0000233": {"platelet"}, "CL:0000451": {"dendritic cell"}}
	// PostgreSQL ranks in SQL what bbolt ranks in Go: the same hits, in
	// the same order, with the same scores, on this large catalog too.
	for _, q := range []string{"PBMC gene expression", "bone marrow treated", "k012345", "monocyte", "T cell", "cell"} {
		for _, nm := range []map[string][]string{nil, names} {
			opts := catalog.SearchOptions{Limit: 20, TermNames: nm}
			want, err := perCall.SearchWith(ctx, q, opts)
			if err != nil {
				b.Fatal(err)
			}
			got, err := pg.SearchWith(ctx, q, opts)
			if err != nil {
				b.Fatal(err)
			}
			if g, w := fmt.Sprint(fullHits(got)), fmt.Sprint(fullHits(want)); g != w {
				b.Errorf("SearchWith %q (names %v): PostgreSQL\n%s\nbbolt:\n%s", q, nm != nil, g, w)
			}
		}
	}
	for _, st := range []struct {
		name string
		c    catalog.Catalog
	}{{"bbolt", perCall}, {"bbolt-held", held}, {"postgres", pg}} {
		for _, tc := range finds {
			b.Run("Find/"+tc.name+"/"+st.name, func(b *testing.B) {
				var n int
				m := startCPU(b, st.name, st.c)
				for b.Loop() {
					vs, err := st.c.Find(ctx, tc.f)
					if err != nil {
						b.Fatal(err)
					}
					n = len(vs)
				}
				m.report(b)
				b.ReportMetric(float64(n), "rows")
			})
		}
		for _, q := range []string{"PBMC gene expression", "bone marrow treated", "k012345"} {
			b.Run("Search/"+q+"/"+st.name, func(b *testing.B) {
				m := startCPU(b, st.name, st.c)
				for b.Loop() {
					if _, err := st.c.Search(ctx, q, 20); err != nil {
						b.Fatal(err)
					}
				}
				m.report(b)
			})
		}
		for _, q := range []string{"PBMC gene expression", "monocyte", "T cell"} {
			b.Run("SearchNames/"+q+"/"+st.name, func(b *testing.B) {
				ts := st.c.(catalog.TermSearcher)
				m := startCPU(b, st.name, st.c)
				for b.Loop() {
					if _, err := ts.SearchWith(ctx, q, catalog.SearchOptions{Limit: 20, TermNames: names}); err != nil {
						b.Fatal(err)
					}
				}
				m.report(b)
			})
		}
		b.Run("List1000/"+st.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := st.c.List(ctx, catalog.Query{Limit: 1000}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRoundTrip is the floor of a single lookup: a bare `SELECT 1`
// and ByKey's prepared statement alone (no decoding), over TCP and over
// the server's Unix socket, beside ByKey itself on a store opened on the
// same URL (which may pick the socket itself, see Open).
func BenchmarkRoundTrip(b *testing.B) {
	ctx := context.Background()
	u := pgtest.URL(b)
	s, err := postgres.Open(ctx, u, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fill(b, s, 10000)
	var dir string
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.QueryRow(ctx, `SELECT split_part(current_setting('unix_socket_directories'), ',', 1)`).Scan(&dir); err != nil {
		b.Fatal(err)
	}
	c.Close(ctx)
	key := lookupKey
	for _, via := range []struct{ name, url string }{{"tcp", u}, {"unix", pgtest.WithParam(u, "host", dir)}} {
		conn, err := pgx.Connect(ctx, via.url)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		b.Run("select1/"+via.name, func(b *testing.B) {
			m := startCPU(b, "postgres", nil)
			for b.Loop() {
				var n int
				if err := conn.QueryRow(ctx, `SELECT 1`).Scan(&n); err != nil {
					b.Fatal(err)
				}
			}
			m.report(b)
		})
		b.Run("prepared/"+via.name, func(b *testing.B) {
			m := startCPU(b, "postgres", nil)
			i := 0
			for b.Loop() {
				var versions, latest int
				var raw []byte
				if err := conn.QueryRow(ctx, postgres.ByKeySQL, key(i), 0).Scan(&versions, &latest, &raw); err != nil {
					b.Fatal(err)
				}
				i++
			}
			m.report(b)
		})
	}
	b.Run("ByKey", func(b *testing.B) {
		m := startCPU(b, "postgres", nil)
		i := 0
		for b.Loop() {
			if _, err := s.ByKey(ctx, key(i), 0); err != nil {
				b.Fatal(err)
			}
			i++
		}
		m.report(b)
	})
}

// fillKey is the key fill gives its j-th version.
func fillKey(j int) string { return fmt.Sprintf("d%02d/s%03d/f%d.txt", j%50, j%700, j) }

// lookupKey is the i-th key the lookup benchmarks ask for: fill's keys in
// a scattered order.
func lookupKey(i int) string { return fillKey((i * 7919) % 10000) }

// BenchmarkAnnotateLarge: curate --key on a gene column annotates one
// version with every distinct value and every term, 50,000 of each
// (first), and curating the unchanged file again annotates it with the
// same ones (again, which should write nothing). Deduplicating with
// slices.Contains per value made both quadratic: 40 s for 78,893 genes.
func BenchmarkAnnotateLarge(b *testing.B) {
	const n = 50000
	add := catalog.Annotations{Features: map[string][]string{"gene": make([]string, n)}, Terms: make([]catalog.Term, n)}
	for i := range n {
		id := fmt.Sprintf("ENSG%011d", (i*7919)%n) // not in order, as a column's
		add.Features["gene"][i] = id
		add.Terms[i] = catalog.Term{Entity: "gene", ID: id, Name: fmt.Sprintf("GENE%d", i)}
	}
	ctx := context.Background()
	for _, s := range stores(b) {
		if s.name != "bbolt" && s.name != "postgres" {
			continue
		}
		b.Run(s.name, func(b *testing.B) {
			c, _ := s.open(b)
			if _, err := c.CreateFeature(ctx, catalog.Feature{Name: "gene", Dtype: "cat[gene]"}); err != nil {
				b.Fatal(err)
			}
			b.Run("first", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					sv, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV(fmt.Sprintf("first/%d.csv", i), fmt.Sprint(i))})
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					if _, err := c.Annotate(ctx, sv[0].Version.UID, add); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("again", func(b *testing.B) {
				sv, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV("again.csv", "again")})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Annotate(ctx, sv[0].Version.UID, add); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := c.Annotate(ctx, sv[0].Version.UID, add); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
