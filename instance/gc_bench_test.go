package instance_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
	"golang.org/x/sync/errgroup"
)

// TestGCManyDoomedPacksS3 measures a gc of LAMINA_GC_BENCH doomed packs
// on S3 (through a proxy adding LAMINA_GC_BENCH_LATENCY to each request),
// all marked by an earlier interrupted gc, so that it reads every mark
// twice (MarkNotes). It logs the time; it asserts only the outcome.
func TestGCManyDoomedPacksS3(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("LAMINA_GC_BENCH"))
	if n <= 0 {
		t.Skip("set LAMINA_GC_BENCH=2000 to measure")
	}
	lat, _ := time.ParseDuration(os.Getenv("LAMINA_GC_BENCH_LATENCY"))
	ctx := context.Background()
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)
	proxy, via := s3test.NewProxy(t, srv)
	cfg := via.Config(bucket)
	cfg.Prefix = "lab"
	st, err := s3b.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cat, err := catalog.OpenBolt(filepath.Join(dir, "catalog.db"), catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	store, err := cache.NewStore(st, filepath.Join(dir, "index.db"), cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	in := instance.New(instance.Settings{Name: "team", ID: "team-id", Storage: "s3://" + bucket + "/lab", DataDir: dir}, cat, st, store)
	var g errgroup.Group
	g.SetLimit(16)
	for i := range n { // one unreferenced pack each
		g.Go(func() error {
			w := in.Store.NewWriter()
			if _, _, err := w.PutFile(ctx, bytes.NewReader(fmt.Appendf(nil, "pack %d", i)), nil); err != nil {
				return err
			}
			return w.CommitNoSync(ctx)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	// An interrupted gc leaves its marks on all of them.
	ictx, cancel := context.WithCancel(ctx)
	if _, err := in.GC(ictx, instance.GCOptions{Settle: time.Hour, Waiting: func(int, int64, time.Duration) { cancel() }}); err == nil {
		t.Fatal("the interrupted gc ended")
	}
	proxy.SetLatency(lat)
	reqs := proxy.Requests()
	start := time.Now()
	gst, err := in.GC(ctx, instance.GCOptions{Settle: time.Millisecond})
	took := time.Since(start)
	proxy.SetLatency(0)
	if err != nil || gst.DeadPacks != n {
		t.Fatalf("gc: %+v %v", gst, err)
	}
	t.Logf("gc of %d doomed packs (latency %s): %s; %d requests", n, lat, took.Round(time.Millisecond), proxy.Requests()-reqs)
}
