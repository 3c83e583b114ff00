package cache_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
)

// waitStored waits (up to 5 s) until the cache holds blocks and stored no
// new one for 100 ms: a read hands the fetched bytes to the reader before
// they are written, so right after it the cache folder may still be empty.
func waitStored(t *testing.T, d *cache.DiskCache) {
	t.Helper()
	last, quiet := -1, 0
	for i := 0; i < 250 && quiet < 5; i++ {
		if n := d.Info().Blocks; n > 0 && n == last {
			quiet++
		} else {
			last, quiet = n, 0
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// corruptFiles flips a byte in every file under dir and returns how many.
func corruptFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			return nil
		}
		for i := 0; i < len(b); i += 4096 {
			b[i] ^= 0xff
		}
		os.WriteFile(p, b, 0o600)
		n++
		return nil
	})
	return n
}
