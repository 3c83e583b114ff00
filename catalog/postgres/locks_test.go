package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// Writes that change keys run READ COMMITTED under advisory locks
// (writeKeys). Two stores racing to put incompatible things at one place
// — a file and a file under it, a folder and a file, a link and a file —
// never both succeed, and saves of one key racing with its trash and
// restore keep numbers unique.
func TestRacingPlaces(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	a, b := open2(t, u), open2(t, u)
	save := func(c catalog.Catalog, key string) func() error {
		return func() error {
			_, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV(key, key)})
			return err
		}
	}
	const rounds = 40
	for _, tc := range []struct {
		name string
		x, y func(i int) func() error
	}{
		{"file and file below", func(i int) func() error { return save(a, fmt.Sprintf("f%d", i)) },
			func(i int) func() error { return save(b, fmt.Sprintf("f%d/sub/x", i)) }},
		{"folder and file", func(i int) func() error { return func() error { return a.MakeFolder(ctx, fmt.Sprintf("d%d", i)) } },
			func(i int) func() error { return save(b, fmt.Sprintf("d%d", i)) }},
		{"link and file below", func(i int) func() error { return func() error { return a.Symlink(ctx, fmt.Sprintf("l%d", i), "t") } },
			func(i int) func() error { return save(b, fmt.Sprintf("l%d/x", i)) }},
		{"rename onto a file's folder", func(i int) func() error {
			return func() error {
				if err := save(a, fmt.Sprintf("src%d", i))(); err != nil {
					return fmt.Errorf("setup: %w", err)
				}
				_, err := a.Rename(ctx, fmt.Sprintf("src%d", i), fmt.Sprintf("r%d", i))
				return err
			}
		}, func(i int) func() error { return save(b, fmt.Sprintf("r%d/x", i)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			both := 0
			for i := 0; i < rounds; i++ {
				errs := race(tc.x(i), tc.y(i))
				for _, err := range errs {
					if err != nil && !errors.Is(err, catalog.ErrConflict) {
						t.Fatalf("round %d: %v", i, err)
					}
				}
				if errs[0] == nil && errs[1] == nil {
					both++
				}
				if errs[0] != nil && errs[1] != nil {
					t.Fatalf("round %d: both failed: %v; %v", i, errs[0], errs[1])
				}
			}
			if both > 0 {
				t.Fatalf("%d of %d rounds let both writes in", both, rounds)
			}
		})
	}
	t.Run("saves, trash and restore of one key", func(t *testing.T) {
		var wg sync.WaitGroup
		for w, c := range []catalog.Catalog{a, b, a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					var err error
					switch {
					case w == 3 && i%2 == 0:
						_, err = c.Trash(ctx, "one")
					case w == 3:
						_, err = c.Restore(ctx, "one")
					default:
						_, err = c.Save(ctx, []catalog.NewVersion{catalogtest.NV("one", fmt.Sprint(w, i))})
					}
					if err != nil && !errors.Is(err, catalog.ErrNotFound) {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		vs, err := a.Versions(ctx, "one", true)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 75 {
			t.Fatalf("%d versions of 75 saves", len(vs))
		}
		for i, v := range vs {
			if v.Version != i+1 {
				t.Fatalf("version %d is number %d", i+1, v.Version)
			}
		}
	})
}

// race runs x and y at once and returns their errors.
func race(x, y func() error) [2]error {
	var errs [2]error
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, f := range []func() error{x, y} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f()
		}()
	}
	close(start)
	wg.Wait()
	return errs
}
