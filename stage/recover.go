package stage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/ref"
)

// Recovered is what Recover did with one staged file left by a daemon that
// stopped without releasing it.
type Recovered struct {
	Key     string // the key its writer wrote
	SavedAs string // the key its bytes were saved under ("" if dropped)
	Message string
}

// LostAndFound is the folder of the namespace where Recover keeps the bytes
// of files that were never closed (or whose commit failed).
const LostAndFound = "lost+found"

// Recover commits every file whose writer had closed it (its journal says
// closed) and saves every other staged file under lost+found/, then clears
// the staging folder. Run it before the mount serves.
func (s *Stage) Recover(ctx context.Context) ([]Recovered, error) {
	ents, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	var out []Recovered
	for _, e := range ents {
		name := e.Name()
		id, state, ok := strings.Cut(name, ".")
		if !ok || (state != "open" && state != "closed" && state != "done") {
			continue
		}
		if state != "done" {
			if _, err := os.Stat(filepath.Join(s.opts.Dir, id+".done")); err == nil {
				// Released after its commit; the ".done" journal decides.
				os.Remove(filepath.Join(s.opts.Dir, name))
				continue
			}
		}
		b, err := os.ReadFile(filepath.Join(s.opts.Dir, name))
		var j journal
		if err == nil {
			err = json.Unmarshal(b, &j)
		}
		data := filepath.Join(s.opts.Dir, id)
		info, serr := os.Stat(data)
		if err != nil || serr != nil {
			s.log.Warn("lamina mount: unreadable staging journal dropped", "file", name, "err", err, "stat", serr)
			os.Remove(filepath.Join(s.opts.Dir, name))
			os.Remove(data)
			continue
		}
		r := Recovered{Key: j.Key}
		gone := false // content the catalog and index know did not reach the disk
		commit := func(key, desc string) error {
			fh, err := os.Open(data)
			if err != nil {
				return err
			}
			defer fh.Close()
			_, err = s.commitFile(ctx, key, fh, info.ModTime(), j.Mode, desc, gone)
			return err
		}
		if state == "done" {
			// Committed (the catalog points at it) but maybe never synced:
			// if the machine crashed, its content may not have reached the
			// disk. Intact content needs nothing; else keep the bytes.
			if err := s.intact(ctx, j.Manifest); err == nil {
				os.Remove(filepath.Join(s.opts.Dir, name))
				os.Remove(data)
				continue
			} else {
				state, gone = "open", true
				r.Message = fmt.Sprintf("committed before the machine stopped, but its content did not reach the disk (%v)", err)
			}
		}
		if state == "closed" {
			if err := commit(j.Key, ""); err == nil {
				r.SavedAs, r.Message = j.Key, "committed at restart: its writer had closed it"
			} else {
				state = "open"
				r.Message = fmt.Sprintf("the commit failed again (%v)", err)
			}
		}
		if state == "open" {
			lost := LostAndFound + "/" + time.Now().UTC().Format("20060102T150405") + "-" + id[:8] + "/" + j.Key
			if ref.CheckKey(lost) != nil {
				lost = LostAndFound + "/" + id
			}
			why := r.Message
			if why == "" {
				why = "its writer had not closed it when the daemon stopped"
			}
			desc := fmt.Sprintf("recovered bytes of %s: %s", j.Key, why)
			if err := commit(lost, desc); err != nil {
				s.log.Error("lamina mount: cannot keep staged bytes; they stay in the staging folder", "key", j.Key, "file", data, "err", err)
				r.Message = fmt.Sprintf("kept in %s: %v", data, err)
				out = append(out, r)
				continue
			}
			r.SavedAs, r.Message = lost, desc
		}
		s.log.Warn("lamina mount: recovered a staged file", "key", r.Key, "saved_as", r.SavedAs, "why", r.Message)
		out = append(out, r)
		os.Remove(filepath.Join(s.opts.Dir, name))
		os.Remove(data)
	}
	if len(out) > 0 {
		if err := s.content.Sync(ctx); err != nil {
			return out, fmt.Errorf("stage: %w", err)
		}
	}
	// Data files without a journal: a crash between creating the two.
	ents, _ = os.ReadDir(s.opts.Dir)
	for _, e := range ents {
		if !strings.Contains(e.Name(), ".") {
			if _, err := os.Stat(filepath.Join(s.opts.Dir, e.Name()+".done")); err == nil {
				continue // its content did not reach the disk: kept above
			}
			if _, err := os.Stat(filepath.Join(s.opts.Dir, e.Name()+".open")); os.IsNotExist(err) {
				if _, err := os.Stat(filepath.Join(s.opts.Dir, e.Name()+".closed")); os.IsNotExist(err) {
					os.Remove(filepath.Join(s.opts.Dir, e.Name()))
				}
			}
		}
	}
	return out, nil
}

// intact reports whether the content at manifest is all there and verifies.
func (s *Stage) intact(ctx context.Context, manifest string) error {
	if manifest == "" {
		return errors.New("no manifest recorded")
	}
	m, err := s.content.LoadManifest(ctx, cache.Ref(manifest))
	if err != nil {
		return err
	}
	for _, f := range m.Files {
		if _, err := s.content.Open(f).WriteToContext(ctx, io.Discard, nil); err != nil {
			return err
		}
	}
	return nil
}
