package cache_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

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
