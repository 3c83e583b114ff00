package fs

import (
	"context"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/lamina-bio/lamina/catalog"
)

// A latest path's node keeps what it showed last (for when its name is
// gone) behind its pageState, stored only when a lookup found something
// else: the kernel keeps a node per created file, and a stat of an
// unchanged file stores nothing.
func TestLatestPathRemembersOnChange(t *testing.T) {
	p := &pageState{}
	if _, ok := p.shown(); ok {
		t.Fatal("a node never looked up shows a last entry")
	}
	it := item{name: "f", uid: [20]byte{1}, n: 1, mode: 0o644, size: 3, mtime: 5}
	p.remember(itemEntry("d/", it, true))
	first := p.last.Load()
	p.remember(itemEntry("d/", it, true)) // the same lookup again: a new Key string, equal
	if p.last.Load() != first {
		t.Error("an unchanged lookup stored its entry again")
	}
	it.uid, it.n, it.size = [20]byte{2}, 2, 7
	p.remember(itemEntry("d/", it, true))
	if e, ok := p.shown(); !ok || e.Size != 7 || e.Key != "d/f" {
		t.Errorf("after a new version: shown %+v, %v; want size 7 of d/f", e, ok)
	}
}

// A sidecar's served hash lives in Mount.sidecars, not in the node, and
// goes when the kernel forgets the node.
func TestSidecarServedGoesWithNode(t *testing.T) {
	var s sidecarInodes
	n := &node{e: Entry{Kind: KindMeta, V: &catalog.Version{UID: "u1", Key: "d/f"}}}
	s.use(n)
	if s.serve(n, 1) {
		t.Error("a first open kept pages")
	}
	if !s.serve(n, 1) {
		t.Error("an open with the same bytes dropped the pages")
	}
	if s.serve(n, 2) {
		t.Error("an open with other bytes kept the pages")
	}
	s.forget(n)
	if len(s.served) != 0 || len(s.m) != 0 {
		t.Errorf("a forgotten sidecar node is still held: %d served, %d tracked", len(s.served), len(s.m))
	}
}

// TestSeekdirPastTheEnd: the kernel serves the first entries of a folder
// from its cached listing, then asks a new handle to go on at that offset;
// when the folder shrank meanwhile the fresh listing is shorter. That was
// EINVAL, and `ls` failed ("reading directory: Invalid argument"); it is
// the end of the listing, as on a plain folder.
func TestSeekdirPastTheEnd(t *testing.T) {
	d := &dirHandle{loaded: true, es: make([]fuse.DirEntry, 3)}
	if errno := d.Seekdir(context.Background(), 44); errno != 0 {
		t.Fatalf("Seekdir past the end: %v", errno)
	}
	if e, errno := d.Readdirent(context.Background()); e != nil || errno != 0 {
		t.Fatalf("Readdirent after it: %v, %v; want the end", e, errno)
	}
	if errno := d.Seekdir(context.Background(), 2); errno != 0 {
		t.Fatalf("Seekdir within: %v", errno)
	}
	if e, _ := d.Readdirent(context.Background()); e == nil || e.Off != 3 {
		t.Fatalf("Readdirent at 2: %+v", e)
	}
}
