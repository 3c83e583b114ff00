package instance

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
)

// LostUploads is what the upload queue found gone before its upload
// (someone removed the staged files): the data is in no other place, and
// the versions that use it cannot be read. It is kept in a file of the
// data folder until the user says it is dealt with (ForgetLost), so that
// `lamina status` goes on saying so after a restart, when no queue knows
// those objects any more.
type LostUploads struct {
	Since    time.Time `json:"since"`              // the first loss recorded
	Objects  []string  `json:"objects"`            // object names
	Versions []string  `json:"versions,omitempty"` // KEY@vN of the versions that use them, as far as known
}

func (s Settings) lostPath() string { return filepath.Join(s.dataHome(), "lost-uploads.json") }

// Lost reads the record of lost uploads; nil when there is none.
func (s Settings) Lost() (*LostUploads, error) {
	return readJSONRecord[LostUploads](s.lostPath())
}

// RecordLost adds objects, and the versions that use them, to the record
// of lost uploads.
func (s Settings) RecordLost(objects, versions []string) error {
	l, err := s.Lost()
	if err != nil || l == nil {
		l = &LostUploads{Since: time.Now().UTC().Truncate(time.Second)}
	}
	for _, o := range objects {
		if !slices.Contains(l.Objects, o) {
			l.Objects = append(l.Objects, o)
		}
	}
	for _, v := range versions {
		if !slices.Contains(l.Versions, v) {
			l.Versions = append(l.Versions, v)
		}
	}
	slices.Sort(l.Objects)
	slices.Sort(l.Versions)
	return writeRecord(s.dataHome(), s.lostPath(), l)
}

// ForgetLost removes the record of lost uploads (the user dealt with it).
func (s Settings) ForgetLost() error { return removeRecord(s.lostPath()) }

// VersionsInPacks returns the versions (trashed ones too) whose manifest or
// chunks lie in one of the packs. It reads every manifest it can; one that
// lies in such a pack is not read (it is lost too).
func (in *Instance) VersionsInPacks(ctx context.Context, packs map[string]bool) ([]catalog.Version, error) {
	var out []catalog.Version
	err := in.Catalog.Each(ctx, func(v catalog.Version) error {
		ml, _, err := cache.Ref(v.Manifest).Parse()
		if err != nil {
			return nil
		}
		if packs[ml.Pack] {
			out = append(out, v)
			return nil
		}
		m, err := in.Store.LoadManifest(reading(ctx, v), cache.Ref(v.Manifest))
		if err != nil {
			return nil
		}
		for _, f := range m.Files {
			for _, c := range f.Chunks {
				if packs[c.Loc.Pack] {
					out = append(out, v)
					return nil
				}
			}
		}
		return nil
	})
	return out, err
}

// readJSONRecord reads the record at path (writeRecord); nil when there is
// none.
func readJSONRecord[T any](path string) (*T, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// removeRecord removes the record at path; none there is no error.
func removeRecord(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// writeRecord writes v as JSON to path in the data folder dir, durably:
// a temporary synced and renamed over it, then the folder synced (the
// records of lost uploads and of versions after a take-over, which must
// outlive the process that found them).
func writeRecord(dir, path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}
