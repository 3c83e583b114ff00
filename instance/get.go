package instance

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
)

// Manifest loads the content description of v.
func (in *Instance) Manifest(ctx context.Context, v catalog.Version) (*cache.Manifest, error) {
	return in.Store.LoadManifest(ctx, cache.Ref(v.Manifest))
}

// WriteTo copies the bytes of a file version to w, verified.
func (in *Instance) WriteTo(ctx context.Context, v catalog.Version, w io.Writer, progress cache.Progress) error {
	m, err := in.Manifest(ctx, v)
	if err != nil {
		return err
	}
	if m.Kind != cache.KindFile {
		return fmt.Errorf("%s is a folder: give -o DIR to get its files", v.Ref())
	}
	_, err = in.Store.Open(m.Files[0]).WriteToContext(ctx, w, progress)
	return err
}

// Export writes version v to path: a file, or for a folder artifact a new
// folder with its files. It never overwrites: the target must not exist
// (unless overwrite). A file is written beside the target and renamed, so an
// interrupted get leaves nothing half-written under the name.
func (in *Instance) Export(ctx context.Context, v catalog.Version, path string, overwrite bool, progress cache.Progress) error {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
		// A device or a pipe (-o /dev/null, a FIFO): written into, not
		// replaced.
		if v.Kind == cache.KindFolder {
			return fmt.Errorf("%s is a folder artifact: give a folder to write its files into, not %s", v.Key, path)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if err := in.WriteTo(ctx, v, f, progress); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if _, err := os.Lstat(path); err == nil && !overwrite {
		return fmt.Errorf("%s already exists (use --force to replace it)", path)
	}
	m, err := in.Manifest(ctx, v)
	if err != nil {
		return err
	}
	if m.Kind == cache.KindFile {
		return in.exportFile(ctx, m.Files[0], path, os.FileMode(catalog.Perm(v.Mode)), progress)
	}
	tmp := path + ".lamina-partial"
	os.RemoveAll(tmp)
	for _, f := range m.Files {
		p := filepath.Join(tmp, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(f.Mode)
		if mode == 0 {
			mode = 0o644
		}
		if err := in.exportFile(ctx, f, p, mode, progress); err != nil {
			os.RemoveAll(tmp)
			return err
		}
	}
	if overwrite {
		os.RemoveAll(path)
	}
	return os.Rename(tmp, path)
}

func (in *Instance) exportFile(ctx context.Context, f cache.File, path string, mode os.FileMode, progress cache.Progress) error {
	tmp := path + ".lamina-partial"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	_, err = in.Store.Open(f).WriteToContext(ctx, out, progress)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
