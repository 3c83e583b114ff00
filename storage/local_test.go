package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/storage"
	"github.com/lamina-bio/lamina/storage/storagetest"
)

func TestLocalConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := storage.OpenLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestLocalSwapper(t *testing.T) {
	storagetest.RunSwapper(t, func(t *testing.T) storage.Swapper {
		b, err := storage.OpenLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestLocalSkipsAndCleansTempFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := storage.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "chunks/ab/x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	// A crash mid-Put leaves a temporary file beside the target.
	if err := os.WriteFile(filepath.Join(dir, "chunks/ab/y.tmp-123"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := b.List(ctx, "chunks/", func(i storage.Info) error { names = append(names, i.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "chunks/ab/x" {
		t.Fatalf("List = %v, want only the committed object", names)
	}
	// One being written now by another process is left alone.
	if n, err := b.Clean(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("Clean of an hour ago = %d, %v; want none removed", n, err)
	}
	n, err := b.Clean(ctx, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("Clean = %d, %v; want 1 removed", n, err)
	}
}

func TestLocalRejectsBadNames(t *testing.T) {
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "/abs", "../escape", "a/../../b", "x.tmp-1"} {
		if err := b.Put(context.Background(), name, nil); err == nil {
			t.Errorf("Put(%q) succeeded", name)
		}
	}
}

// TestLocalReadRange reads into several buffers at once; a range past the
// end and a missing object are errors, and a replaced object is read anew
// (the backend keeps files open).
func TestLocalReadRange(t *testing.T) {
	ctx := context.Background()
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("0123456789abcdefghij")
	if err := b.Put(ctx, "packs/aa/p", data); err != nil {
		t.Fatal(err)
	}
	one, rest, empty := make([]byte, 1), make([]byte, 12), []byte{}
	if err := b.ReadRange(ctx, "packs/aa/p", 3, one, empty, rest); err != nil {
		t.Fatal(err)
	}
	if string(one)+string(rest) != "3456789abcdef" {
		t.Fatalf("ReadRange = %q %q", one, rest)
	}
	if err := b.ReadRange(ctx, "packs/aa/p", 15, make([]byte, 6)); err == nil {
		t.Fatal("ReadRange past the end: no error")
	}
	if err := b.ReadRange(ctx, "packs/aa/none", 0, one); !storage.IsNotFound(err) {
		t.Fatalf("ReadRange of a missing object: %v, want not found", err)
	}
	if err := b.Put(ctx, "packs/aa/p", []byte("ZYXWVUTSRQ")); err != nil {
		t.Fatal(err)
	}
	if err := b.ReadRange(ctx, "packs/aa/p", 0, one); err != nil || one[0] != 'Z' {
		t.Fatalf("ReadRange after a Put = %q, %v; want the new bytes", one, err)
	}
}
