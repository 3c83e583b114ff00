package fs_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
)

// TestConcurrentTruncatingWritersKeepTheirBytes: two writers of one key,
// each `open(O_TRUNC)`, write, close, in a loop. Every close makes a
// version holding exactly that writer's bytes. The kernel sent O_TRUNC as
// OPEN then a SETATTR(size=0) without the handle, and the mount truncated
// the key's newest open file: when two opens interleaved, the other
// writer's file was emptied and this writer's stayed a copy of the latest
// version, written over at offset 0 — a version that was half another's.
func TestConcurrentTruncatingWritersKeepTheirBytes(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	os.MkdirAll(w.p("race"), 0o755)
	p := w.p("race/r.bin")
	const writers, closes = 2, 30
	var mu sync.Mutex
	written := map[[32]byte]string{}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for id := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(id), 7))
			for i := range closes {
				data := make([]byte, []int{100, 3000, 200_000, 1 << 20}[r.IntN(4)])
				for j := range data {
					data[j] = byte(r.Uint32())
				}
				if err := os.WriteFile(p, data, 0o644); err != nil {
					errs <- fmt.Errorf("writer %d close %d: %w", id, i, err)
					return
				}
				mu.Lock()
				written[sha256.Sum256(data)] = fmt.Sprintf("writer %d close %d (%d bytes)", id, i, len(data))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	versions := map[[32]byte]int{}
	var foreign []string
	for v := 1; ; v++ {
		b, err := os.ReadFile(fmt.Sprintf("%s@v%d", p, v))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		versions[h] = v
		if _, ok := written[h]; !ok {
			foreign = append(foreign, fmt.Sprintf("v%d (%d bytes, starts %x)", v, len(b), b[:min(len(b), 8)]))
		}
	}
	var missing []string
	for h, what := range written {
		if _, ok := versions[h]; !ok {
			missing = append(missing, what)
		}
	}
	if len(foreign) > 0 || len(missing) > 0 {
		t.Fatalf("%d versions for %d closes; versions no writer wrote: %v; closes with no version: %v", len(versions), len(written), foreign, missing)
	}
}
