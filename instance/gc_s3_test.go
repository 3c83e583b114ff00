package instance_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/storage"
	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// s3Workstations are workstations (gc_test.go) on an S3 root; wrap, when
// set, sits between the second one and the bucket.
func s3Workstations(t *testing.T, wrap func(storage.Backend) storage.Backend) (a, b *instance.Instance) {
	t.Helper()
	srv := s3test.Real(t)
	cfg := srv.Config(srv.CreateBucket(t))
	cfg.Prefix = "lab"
	st, err := s3b.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cat, err := catalog.OpenBolt(filepath.Join(dir, "catalog.db"), catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	open := func(name string, b storage.Backend) *instance.Instance {
		store, err := cache.NewStore(b, filepath.Join(dir, name, "index.db"), cache.DefaultParams)
		if err != nil {
			t.Fatal(err)
		}
		return instance.New(instance.Settings{Name: "team", ID: "team-id", Storage: "s3://" + cfg.Bucket + "/lab", DataDir: filepath.Join(dir, name)}, cat, b, store)
	}
	var bb storage.Backend = st
	if wrap != nil {
		bb = wrap(st)
	}
	return open("a", st), open("b", bb)
}

// otherGCFirst deletes a record object just before this gc reads it, as
// another gc at work does.
type otherGCFirst struct {
	storage.Backend
	done atomic.Bool
}

func (o *otherGCFirst) Get(ctx context.Context, name string) ([]byte, error) {
	if strings.HasPrefix(name, "records/") && o.done.CompareAndSwap(false, true) {
		if err := o.Backend.Delete(ctx, name); err != nil {
			return nil, err
		}
	}
	return o.Backend.Get(ctx, name)
}

// Two gcs at once on S3: a record the other gc deleted after this one
// listed it is gone already, not an error (audit 28: "s3: stat
// …/records/<x>.json: NotFound" ended a gc).
func TestConcurrentGCRecordsOnS3(t *testing.T) {
	ctx := context.Background()
	var other *otherGCFirst
	a, b := s3Workstations(t, func(s storage.Backend) storage.Backend { other = &otherGCFirst{Backend: s}; return other })
	const n = 8
	saveAndPurge := func(round int) {
		for i := range n {
			key := fmt.Sprintf("r%d/%d.bin", round, i)
			stored(t, a, key, []byte(key))
			if _, err := a.Catalog.Purge(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
	}
	saveAndPurge(0)
	st, err := b.GC(ctx, instance.GCOptions{})
	if err != nil {
		t.Fatalf("gc after another deleted a record it listed: %v", err)
	}
	if !other.done.Load() || st.Records != n-1 {
		t.Errorf("deleted records: %d, want %d (one the other gc deleted)", st.Records, n-1)
	}
	// And two real gcs at once, a few rounds.
	for round := 1; round <= 3; round++ {
		saveAndPurge(round)
		var wg sync.WaitGroup
		var total atomic.Int64
		errs := make(chan error, 2)
		for _, in := range []*instance.Instance{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := in.GC(ctx, instance.GCOptions{Settle: 0})
				if err != nil {
					errs <- err
				}
				total.Add(int64(st.Records))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: a gc beside another: %v", round, err)
		}
		if total.Load() < n {
			t.Errorf("round %d: the two gcs deleted %d records, want at least %d", round, total.Load(), n)
		}
	}
}
