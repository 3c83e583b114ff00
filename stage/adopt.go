package stage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// Adopt makes the file at p, a scratch file renamed onto key while handles
// descriptors hold it open for writing, an open File of key, as a file
// written under a name of its own and renamed onto key while open is
// (Rename): the file moves into the staging folder, the writers of the
// file key showed hold one no name shows, and the File commits at its
// writers' close, with what they wrote before the rename and after. Each
// of the handles releases the File once (Release).
//
// The writers keep writing through their own descriptors of the file,
// which the File does not see (the kernel may write a scratch file without
// asking the mount: FUSE passthrough): it reads its size, mtime and mode
// from the file (observe). p must be on the staging folder's file system;
// where it is not, Adopt fails and changes nothing.
func (s *Stage) Adopt(ctx context.Context, key, p string, handles int) (*File, error) {
	if err := ref.CheckKey(key); err != nil {
		return nil, err
	}
	var base *catalog.Version
	v, err := s.cat.ByKey(catalog.Fresh(ctx), key, 0)
	switch {
	case err == nil && v.Kind != cache.KindFile:
		return nil, fmt.Errorf("stage: %s: %w", key, syscall.EISDIR)
	case err == nil:
		base = &v
	case !errors.Is(err, catalog.ErrNotFound):
		return nil, err
	}
	data, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("stage: adopt %s: %w", p, err)
	}
	fi, err := data.Stat()
	if err != nil {
		data.Close()
		return nil, err
	}
	id := newID()
	sp := filepath.Join(s.opts.Dir, id)
	if err := os.Rename(p, sp); err != nil {
		data.Close()
		return nil, fmt.Errorf("stage: adopt %s: %w", p, err)
	}
	f := &File{s: s, id: id, data: data, key: key, base: base, isNew: base == nil,
		copied: true, dirty: true, wrote: fi.Size() > 0, size: fi.Size(), mtime: fi.ModTime(), mode: uint32(fi.Mode().Perm()),
		external: true, seenMtime: fi.ModTime(), seenMode: uint32(fi.Mode().Perm()),
		handles: handles, unclosed: handles, joined: handles > 1}
	if err := f.writeJournal(stateOpen); err != nil {
		data.Close()
		os.Rename(sp, p)
		return nil, err
	}
	// A reader of the scratch file may still hold it: emptied for reuse,
	// it would read the next staged file's bytes.
	s.spareMu.Lock()
	if s.shared == nil {
		s.shared = map[string]bool{}
	}
	s.shared[id] = true
	s.spareMu.Unlock()
	if base == nil {
		// A link at key goes, as the catalog's Rename replaces one.
		if err := s.cat.RemoveLink(s.lazy(ctx), key); err != nil && !errors.Is(err, catalog.ErrNotFound) {
			s.log.Warn("lamina mount: a link renamed over stays until the file's commit", "key", key, "err", err)
		}
	}
	s.mu.Lock()
	for _, o := range s.open[key] {
		o.deleted = true // the file they write was replaced (Rename)
	}
	s.open[key] = append(s.open[key], f)
	s.mu.Unlock()
	s.changed(key)
	return f, nil
}

// observe takes in what the writers of an adopted File (Adopt) wrote
// through their own descriptors since it last looked: a changed size or
// mtime is bytes to commit, a changed mode the mode to commit. Called with
// f.mu held, before the File's size, times or mode are used.
func (f *File) observe() {
	if !f.external || f.released {
		return
	}
	fi, err := f.data.Stat()
	if err != nil {
		return
	}
	if fi.Size() != f.size || !fi.ModTime().Equal(f.seenMtime) {
		f.size, f.mtime, f.seenMtime = fi.Size(), fi.ModTime(), fi.ModTime()
		f.dirty, f.wrote = true, true
		f.dropStream()
	}
	if mode := uint32(fi.Mode().Perm()); mode != f.seenMode {
		f.mode, f.seenMode, f.touched = mode, mode, true
	}
}

// mirror puts the mode and mtime set on an adopted File (chmod or touch of
// its key's path) on its data, which its writers' fstat shows. Called with
// f.mu held.
func (f *File) mirror() {
	if !f.external || f.released {
		return
	}
	if f.data.Chmod(os.FileMode(f.mode)) == nil {
		f.seenMode = f.mode
	}
	// By the descriptor: f.data's name is the scratch path it was opened
	// at, gone since the rename (a touch of the key never reached the
	// writers' fstat).
	if os.Chtimes(f.dataPath(), f.mtime, f.mtime) == nil {
		if fi, err := f.data.Stat(); err == nil {
			f.seenMtime = fi.ModTime()
		}
	}
}

// appendExternal appends p to an adopted File's data (an appender through
// the mount joined its own writers): through an O_APPEND descriptor, so
// that it lands after what they appended through theirs, which the File's
// size does not know yet (a second appender wrote over the first's lines).
// Called with f.mu held.
func (f *File) appendExternal(p []byte) (int, error) {
	if f.appender == nil {
		a, err := os.OpenFile(f.dataPath(), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return 0, err
		}
		f.appender = a
	}
	n, err := f.appender.Write(p)
	if err != nil && f.broken == nil {
		f.broken, f.brokenAt = err, f.size+int64(n)
	}
	if n > 0 {
		f.observe() // the new size and mtime, as the writers' own
	}
	return n, err
}

// closeData closes the File's descriptors of its data.
func (f *File) closeData() {
	if f.appender != nil {
		f.appender.Close()
		f.appender = nil
	}
	f.data.Close()
}

// dataPath names an adopted File's data by its descriptor: the file moved
// into the staging folder after it was opened.
func (f *File) dataPath() string { return fmt.Sprintf("/proc/self/fd/%d", f.data.Fd()) }
