package stage

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/lamina-bio/lamina/catalog"
)

// Another workstation's rename or trash (a change notification's marker,
// catalog.RenameChange, catalog.DeleteChange) reaches the Files this Stage
// holds open, as its own Rename and Unlink do: a File whose version moved
// commits to the new key, one whose version went to the trash commits
// nothing. Before, their commits brought the old key back (a second
// artifact beside the renamed one; the trashed key as a new version).
//
// Only a File opened on the version the change moved follows it: one
// opened after the change (a new file of the old name), or one that
// committed since, holds a version the change did not touch. The catalog
// says which (one lookup per such File, under the File's lock, so that no
// commit of it runs in between).

// Moved makes the open Files of from, or of keys under the folder from,
// whose versions a rename made elsewhere moved to to, commit there.
func (s *Stage) Moved(ctx context.Context, from, to string) {
	for _, f := range s.openUnder(from, true) {
		f.mu.Lock()
		key := f.Key()
		nk := to + key[len(from):]
		if f.base != nil && !f.released && !f.isDeleted() && key != nk && s.holds(ctx, nk, f.base) {
			s.mu.Lock()
			s.moveLocked(f, nk)
			s.mu.Unlock()
			state := stateOpen
			if f.closed {
				state = stateClosed
			}
			_ = f.writeJournal(state)
			s.log.Info("lamina mount: a file open here was renamed on another workstation; its next commit goes to the new key", "from", key, "to", nk)
		}
		f.mu.Unlock()
	}
}

// Deleted makes the open Files of key whose version another workstation
// put in the trash commit nothing, as after Unlink here.
func (s *Stage) Deleted(ctx context.Context, key string) {
	for _, f := range s.openUnder(key, false) {
		f.mu.Lock()
		if f.base != nil && !f.released && f.Key() == key {
			_, err := s.cat.ByKey(catalog.Fresh(ctx), key, f.base.Version) // trashed versions do not resolve by key
			if errors.Is(err, catalog.ErrNotFound) {
				s.mu.Lock()
				f.deleted = true
				s.mu.Unlock()
				s.log.Info("lamina mount: a file open here was deleted on another workstation; its close commits nothing", "key", key)
			}
		}
		f.mu.Unlock()
	}
}

// openUnder lists the open Files of key and, with folder, of the keys
// under it.
func (s *Stage) openUnder(key string, folder bool) []*File {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*File
	for k, l := range s.open {
		if k == key || folder && strings.HasPrefix(k, key+"/") {
			out = append(out, l...)
		}
	}
	return out
}

// holds reports whether key now holds the version base: a rename to a
// free key keeps its uid and number; onto an existing key it is that
// key's latest version, with the same bytes.
func (s *Stage) holds(ctx context.Context, key string, base *catalog.Version) bool {
	ctx = catalog.Fresh(ctx)
	if v, err := s.cat.ByKey(ctx, key, base.Version); err == nil && v.UID == base.UID {
		return true
	}
	v, err := s.cat.ByKey(ctx, key, 0)
	return err == nil && v.Digest == base.Digest
}

// moveLocked files f under key nk. Called with s.mu.
func (s *Stage) moveLocked(f *File, nk string) {
	list := s.open[f.key]
	for i, o := range list {
		if o == f {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.open, f.key)
	} else {
		s.open[f.key] = list
	}
	f.key = nk
	s.open[nk] = append(s.open[nk], f)
}

// Deleted reports whether f's key was unlinked or replaced (a rename onto
// it) while f was open: f commits nothing any more.
func (f *File) Deleted() bool { return f.isDeleted() }

// isDeleted reports whether f was unlinked.
func (f *File) isDeleted() bool {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	return f.deleted
}

// CommittedElsewhere tells the Stage that another workstation committed a
// version of key: its clean open Files of key follow it at their next use,
// as they follow this Stage's own commits (published, File.follow), so an
// in-place edit opened before that commit builds on it rather than on the
// version before. A File with changes of its own keeps them (its close
// warns: staleBase). It looks the latest up only when a clean File of key
// (or one busy now) is open here.
func (s *Stage) CommittedElsewhere(ctx context.Context, key string) {
	s.mu.Lock()
	open := slices.Clone(s.open[key])
	s.mu.Unlock()
	clean := false
	for _, f := range open {
		// Never wait for a File: a commit holds f.mu for as long as its
		// upload, and this runs on the mount's invalidator. A busy File
		// may be clean.
		if !f.mu.TryLock() {
			clean = true
			continue
		}
		clean = clean || f.base != nil && !f.dirty && !f.released && !f.external
		f.mu.Unlock()
	}
	if !clean {
		return
	}
	v, err := s.cat.ByKey(catalog.Fresh(ctx), key, 0)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.open[key] {
		if cur := f.newer.Load(); cur == nil || cur.Version < v.Version {
			f.newer.Store(&v)
		}
	}
}
