package main

import (
	"os"
	"path/filepath"
	"testing"
)

// An init refused for a root inside another instance's leaves nothing
// behind: no catalog or cache of the new name, no folder in the other's
// root (audit 28).
func TestInitRefusedLeavesNothing(t *testing.T) {
	e := newEnv(t)
	e.init()
	inside := filepath.Join(e.path("storage"), "mine", "deeper")
	e.fails("is inside "+e.path("storage")+", the storage root of another instance", "init", "--storage", inside, "--name", "nested")
	for _, p := range []string{filepath.Join(e.path("storage"), "mine"), filepath.Join(e.dir, "data", "lamina", "nested"), filepath.Join(e.dir, "cache", "lamina", "nested")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("the refused init left %s behind (%v)", p, err)
		}
	}
	// A folder that existed already stays, with what it holds.
	mine := e.write("storage/mine/keep.txt", []byte("mine"))
	e.fails("is inside", "init", "--storage", filepath.Dir(mine), "--name", "nested")
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("the refused init removed a file of the user's: %v", err)
	}
	e.ok("init", "--storage", e.path("elsewhere"), "--name", "nested") // the name is free
}
