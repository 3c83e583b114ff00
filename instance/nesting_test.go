package instance_test

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/lamina-bio/lamina/instance"
)

// denyFS refuses to read the folders named in it, as the OS refuses a
// folder of another user's (tests run as root, who may read any).
type denyFS struct {
	fstest.MapFS
	deny map[string]bool
}

func (d denyFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if d.deny[name] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return d.MapFS.ReadDir(name)
}

// A local root holding a folder this user may not read is checked for
// roots of other instances as far as it can be: init warns about the
// folder instead of refusing the root (audit 28).
func TestNestingCheckSkipsUnreadableFolders(t *testing.T) {
	ctx := context.Background()
	fsys := denyFS{MapFS: fstest.MapFS{
		"instance.json":            {Data: []byte("{}")}, // the root's own
		"packs/ab/x":               {Data: []byte("x")},
		"locked/secret/data":       {Data: []byte("x")},
		"shared/deep/locked2/data": {Data: []byte("x")},
	}, deny: map[string]bool{"locked": true, "shared/deep/locked2": true}}
	inner, skipped, err := instance.FindInnerOwner(ctx, fsys)
	if err != nil || inner != "" || len(skipped) != 2 || skipped[0] != "locked" || skipped[1] != "shared/deep/locked2" {
		t.Fatalf("got %q %q %v; want no inner root, locked and shared/deep/locked2 skipped", inner, skipped, err)
	}
	// An instance.json below the top is found past an unreadable folder.
	fsys.MapFS["zz/other/instance.json"] = &fstest.MapFile{Data: []byte(`{"id":"x1","name":"other"}`)}
	if inner, _, err := instance.FindInnerOwner(ctx, fsys); err != nil || inner != "zz/other" {
		t.Fatalf("got %q %v; want zz/other", inner, err)
	}
}

// A file of the user's named instance.json (a cloud tool's, say) is not
// another instance's root: only an owner record (an id and a name) is.
// Any such file made init refuse the root (audit 32).
func TestNestingCheckIgnoresOtherInstanceJSON(t *testing.T) {
	fsys := fstest.MapFS{
		"proj/cloud/instance.json": {Data: []byte(`{"type":"t2.micro"}`)},
		"proj/bad/instance.json":   {Data: []byte("not json")},
	}
	if inner, _, err := instance.FindInnerOwner(context.Background(), fsys); err != nil || inner != "" {
		t.Fatalf("got %q %v; want no inner root", inner, err)
	}
}
