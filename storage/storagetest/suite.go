// Package storagetest is the conformance suite every storage.Backend must
// pass. Call Run from the backend's own tests with a constructor that returns
// a fresh, empty backend.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/lamina-bio/lamina/storage"
)

// Run runs the suite against backends made by open.
func Run(t *testing.T, open func(t *testing.T) storage.Backend) {
	ctx := context.Background()
	t.Run("PutGet", func(t *testing.T) {
		b := open(t)
		for _, tc := range []struct{ name, data string }{
			{"a", "hello"},
			{"chunks/ab/abcdef", "x"},
			{"empty", ""},
			{"manifests/00/0011", string(bytes.Repeat([]byte("z"), 1<<20))},
		} {
			if err := b.Put(ctx, tc.name, []byte(tc.data)); err != nil {
				t.Fatalf("Put(%s): %v", tc.name, err)
			}
			got, err := b.Get(ctx, tc.name)
			if err != nil || string(got) != tc.data {
				t.Fatalf("Get(%s) = %d bytes, %v; want %d bytes", tc.name, len(got), err, len(tc.data))
			}
			info, err := b.Stat(ctx, tc.name)
			if err != nil || info.Size != int64(len(tc.data)) {
				t.Fatalf("Stat(%s) = %+v, %v", tc.name, info, err)
			}
		}
	})
	t.Run("GetRange", func(t *testing.T) {
		b := open(t)
		must(t, b.Put(ctx, "r", []byte("0123456789")))
		for _, tc := range []struct {
			off, n int64
			want   string
		}{{0, 10, "0123456789"}, {3, 4, "3456"}, {9, 1, "9"}, {5, 0, ""}} {
			got, err := b.GetRange(ctx, "r", tc.off, tc.n)
			if err != nil || string(got) != tc.want {
				t.Fatalf("GetRange(%d,%d) = %q, %v", tc.off, tc.n, got, err)
			}
		}
		if _, err := b.GetRange(ctx, "r", 8, 5); err == nil {
			t.Fatal("GetRange past the end succeeded")
		}
		if _, err := b.GetRange(ctx, "nope", 0, 1); !storage.IsNotFound(err) {
			t.Fatalf("GetRange(missing): %v", err)
		}
		// A replaced or deleted object is never read from a stale handle.
		must(t, b.Put(ctx, "r", []byte("abcdefghij")))
		if got, err := b.GetRange(ctx, "r", 3, 4); err != nil || string(got) != "defg" {
			t.Fatalf("GetRange after overwrite = %q, %v", got, err)
		}
		must(t, b.Delete(ctx, "r"))
		if _, err := b.GetRange(ctx, "r", 0, 1); !storage.IsNotFound(err) {
			t.Fatalf("GetRange after Delete: %v", err)
		}
	})
	t.Run("Overwrite", func(t *testing.T) {
		b := open(t)
		must(t, b.Put(ctx, "k", []byte("one")))
		must(t, b.Put(ctx, "k", []byte("two")))
		got, err := b.Get(ctx, "k")
		if err != nil || string(got) != "two" {
			t.Fatalf("Get after overwrite = %q, %v", got, err)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		b := open(t)
		if _, err := b.Get(ctx, "missing/x"); !storage.IsNotFound(err) {
			t.Fatalf("Get(missing) err = %v, want not found", err)
		}
		if _, err := b.Stat(ctx, "missing/x"); !storage.IsNotFound(err) {
			t.Fatalf("Stat(missing) err = %v, want not found", err)
		}
		if err := b.Delete(ctx, "missing/x"); err != nil {
			t.Fatalf("Delete(missing) = %v, want nil", err)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		b := open(t)
		must(t, b.Put(ctx, "d/x", []byte("1")))
		must(t, b.Delete(ctx, "d/x"))
		if _, err := b.Get(ctx, "d/x"); !storage.IsNotFound(err) {
			t.Fatalf("Get after Delete err = %v", err)
		}
	})
	t.Run("List", func(t *testing.T) {
		b := open(t)
		names := []string{"chunks/aa/aa1", "chunks/aa/aa2", "chunks/bb/bb1", "manifests/m1", "records/r1"}
		for _, n := range names {
			must(t, b.Put(ctx, n, []byte(n)))
		}
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"chunks/", names[:3]},
			{"chunks/aa/", names[:2]},
			{"chunks/b", names[2:3]},
			{"manifests/", names[3:4]},
			{"", names},
			{"nothing/", nil},
		} {
			var got []string
			err := b.List(ctx, tc.prefix, func(i storage.Info) error {
				if i.Size != int64(len(i.Name)) {
					return fmt.Errorf("%s: size %d", i.Name, i.Size)
				}
				got = append(got, i.Name)
				return nil
			})
			must(t, err)
			sort.Strings(got)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("List(%q) = %v, want %v", tc.prefix, got, tc.want)
			}
		}
	})
	t.Run("ListStops", func(t *testing.T) {
		b := open(t)
		must(t, b.Put(ctx, "s/1", nil))
		must(t, b.Put(ctx, "s/2", nil))
		stop := fmt.Errorf("stop")
		if err := b.List(ctx, "s/", func(storage.Info) error { return stop }); err == nil {
			t.Fatal("List ignored the callback's error")
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		b := open(t)
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				for j := 0; j < 20; j++ {
					name := fmt.Sprintf("c/%d", j) // every goroutine writes the same names
					data := bytes.Repeat([]byte{byte(j)}, 1000+j)
					if err := b.Put(ctx, name, data); err != nil {
						errs <- err
						return
					}
					got, err := b.Get(ctx, name)
					if err != nil || !bytes.Equal(got, data) {
						errs <- fmt.Errorf("Get(%s): %d bytes, %v", name, len(got), err)
						return
					}
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
	t.Run("Sync", func(t *testing.T) {
		b := open(t)
		must(t, b.Put(ctx, "y", []byte("1")))
		must(t, b.Sync(ctx))
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// RunSwapper checks a storage.Swapper: a conditional write lands only on
// the object its tag names, and a stale tag or a second create gets
// storage.ErrChanged and writes nothing.
func RunSwapper(t *testing.T, open func(t *testing.T) storage.Swapper) {
	ctx := context.Background()
	s := open(t)
	changed := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrChanged) {
			t.Fatalf("%s: %v; want storage.ErrChanged", what, err)
		}
	}
	if _, _, err := s.GetTag(ctx, "reg.json"); !storage.IsNotFound(err) {
		t.Fatalf("GetTag of nothing: %v", err)
	}
	must(t, s.PutIf(ctx, "reg.json", []byte("one"), ""))
	changed("second create", s.PutIf(ctx, "reg.json", []byte("two"), ""))
	b, tag1, err := s.GetTag(ctx, "reg.json")
	if err != nil || string(b) != "one" || tag1 == "" {
		t.Fatalf("GetTag = %q %q %v", b, tag1, err)
	}
	must(t, s.PutIf(ctx, "reg.json", []byte("three"), tag1))
	changed("stale tag", s.PutIf(ctx, "reg.json", []byte("four"), tag1))
	b, tag3, err := s.GetTag(ctx, "reg.json")
	if err != nil || string(b) != "three" || tag3 == tag1 {
		t.Fatalf("GetTag after the swap = %q %q %v (first tag %q)", b, tag3, err, tag1)
	}
}
