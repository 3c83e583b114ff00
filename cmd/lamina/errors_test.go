package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
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
