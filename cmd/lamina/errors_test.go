package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/storage"
)

// A full disk under the cache folder (a prefetch) points at the cache,
// not at gc, which frees nothing there.
func TestExplainFullDisk(t *testing.T) {
	cache := explain(fmt.Errorf("prefetch x: cache: store a block: %w", syscall.ENOSPC))
	if !strings.Contains(cache, "lamina cache limit") || strings.Contains(cache, "lamina gc") {
		t.Errorf("a full cache disk: %q", cache)
	}
	if store := explain(fmt.Errorf("save x: %w", syscall.ENOSPC)); !strings.Contains(store, "lamina gc") {
		t.Errorf("a full disk: %q", store)
	}
}

// A version whose pack a storage folder does not hold: the advice asks
// whether the folder is the instance's (its disk mounted), not for an
// upload by another workstation, which never writes into that folder.
func TestExplainPackNotInTheStorageFolder(t *testing.T) {
	miss := func(root string, why error) error {
		return fmt.Errorf("z.csv@v1: manifest: %w: p1: %w", cache.ErrPackMissing, &storage.NotInRootError{Root: root, Name: "packs/p1/p1", Why: why})
	}
	got := explain(miss("/disk/store", nil))
	if !strings.Contains(got, "is not in the storage folder /disk/store: is that folder the instance's, its disk mounted?") || strings.Contains(got, "workstation") {
		t.Errorf("a pack not in a storage folder: %q", got)
	}
	got = explain(miss("/nonexistent/store", storage.CheckRoot("/nonexistent/store")))
	if !strings.Contains(got, "storage folder /nonexistent/store is gone: is its disk mounted?") || !strings.Contains(got, "reads again once the instance's storage folder is back at /nonexistent/store") {
		t.Errorf("a pack not read, its storage folder gone: %q", got)
	}
	// The same from a mount daemon: text only.
	if got := explain(errors.New(miss("/nonexistent/store", storage.CheckRoot("/nonexistent/store")).Error())); !strings.Contains(got, "reads again once the instance's storage folder is back") || strings.Contains(got, "workstation") {
		t.Errorf("a pack not read, its storage folder gone, from a daemon: %q", got)
	}
	// S3 (or an error without its class): the upload of another workstation.
	if got := explain(fmt.Errorf("z.csv@v1: %w: p1: %w", cache.ErrPackMissing, storage.ErrNotFound)); !strings.Contains(got, "workstation that saved it") {
		t.Errorf("a pack not in S3: %q", got)
	}
}
