package fs_test

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// TestTouchShowsInVersionAtOnce: after a touch of a latest path, a stat of
// name@vN (the same version) right after could show the old mtime: the
// kernel cached that node's attributes for an hour, and the notification
// that drops them is sent from another goroutine after touch returned
// (about one try in 60; audit 7). Its attributes are now not cached while
// it is the key's latest version.
func TestTouchShowsInVersionAtOnce(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	v := w.save("t/small", []byte("small\n"))
	at := w.p("t/small@v" + strconv.Itoa(v.Version))
	for i := 1; i <= 200; i++ {
		for _, p := range []string{w.p("t/small"), at, at + ".meta"} {
			if _, err := os.Stat(p); err != nil {
				t.Fatal(err)
			}
		}
		want := time.Unix(1600000000+int64(i)*1000, 0)
		if err := os.Chtimes(w.p("t/small"), want, want); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(at)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(want) {
			t.Fatalf("try %d: %s shows mtime %v right after the touch, want %v", i, at, fi.ModTime().Unix(), want.Unix())
		}
	}
}
