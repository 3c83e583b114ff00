package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

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
	n, err := b.Clean(ctx)
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
