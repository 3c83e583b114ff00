package instance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
)

// Reads of a version's content (Manifest, WriteTo, Export, Prefetch, and
// the manifests gc and VersionsInPacks read) tell the content store
// which version they are of, as the mount's reads do
// (fs/content.go): on S3 a pack missing from storage is waited for only
// while the version is recent enough that its upload may still be on its
// way (cache.WithVersion, cache.PackUploadWindow), and a read waits for a
// pack once (cache.PackGaveUpFor). The errors of the four name the
// version, KEY@vN (KEY@vN/PATH for a file of a folder artifact), as the
// mount's log does. get waited the whole wait (30 s) for the pack of a
// version of any age, and its error named only a chunk and a pack.

// reading is ctx for reads of v's content.
func reading(ctx context.Context, v catalog.Version) context.Context {
	return cache.WithVersion(ctx, cache.VersionAt(v.CreatedAt))
}

// Manifest loads the content description of v.
func (in *Instance) Manifest(ctx context.Context, v catalog.Version) (*cache.Manifest, error) {
	m, err := in.Store.LoadManifest(reading(ctx, v), cache.Ref(v.Manifest))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", v.Ref(), err)
	}
	return m, nil
}

// Prefetch reads chunks of v's content through the store into the cache
// (cache.Store.Prefetch).
func (in *Instance) Prefetch(ctx context.Context, v catalog.Version, chunks []cache.Chunk) error {
	if err := in.Store.Prefetch(reading(ctx, v), chunks); err != nil {
		return fmt.Errorf("%s: %w", v.Ref(), err)
	}
	return nil
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
	return in.copyOut(ctx, v, m.Files[0], w, progress)
}

// copyOut writes the bytes of f, a file of v, to w, verified. An error
// reading them names v; an error of w is left as it is: it is about where
// the bytes go.
func (in *Instance) copyOut(ctx context.Context, v catalog.Version, f cache.File, w io.Writer, progress cache.Progress) error {
	out := &outWriter{w: w}
	_, err := in.Store.Open(f).WriteToContext(reading(ctx, v), out, progress)
	if err == nil || out.err != nil {
		return err
	}
	name := v.Ref()
	if f.Path != "" {
		name += "/" + f.Path
	}
	return fmt.Errorf("%s: %w", name, err)
}

// outWriter is a writer that keeps its first error.
type outWriter struct {
	w   io.Writer
	err error
}

func (o *outWriter) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil && o.err == nil {
		o.err = err
	}
	return n, err
}

// Export writes version v to path: a file, or for a folder artifact a new
// folder with its files. It never overwrites: the target must not exist
// unless overwrite, and then it must be what the export makes (a file for a
// file artifact, a folder for a folder artifact), which it replaces. The
// bytes are written beside the target and renamed, so an interrupted or
// failed get leaves nothing half-written, and nothing beside it either.
func (in *Instance) Export(ctx context.Context, v catalog.Version, path string, overwrite bool, progress cache.Progress) error {
	fi, err := os.Stat(path)
	if err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
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
	if err == nil {
		switch {
		case fi.IsDir() && v.Kind != cache.KindFolder:
			return fmt.Errorf("%s is a folder: %s is a file, and --force replaces only a file with it; remove the folder or give another -o (-o %s/ writes into it)", path, v.Key, path)
		case !fi.IsDir() && v.Kind == cache.KindFolder:
			return fmt.Errorf("%s is a file: %s is a folder artifact, and --force replaces only a folder with it; remove the file or give another -o", path, v.Key)
		case !overwrite:
			return fmt.Errorf("%s already exists (use --force to replace it)", path)
		}
	} else if _, err := os.Lstat(path); err == nil && !overwrite {
		return fmt.Errorf("%s already exists (use --force to replace it)", path) // a dangling link
	}
	if d := filepath.Dir(path); d != "." {
		if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cannot write %s: folder %s does not exist (end -o with / to create it and write into it)", path, d)
		}
	}
	m, err := in.Manifest(ctx, v)
	if err != nil {
		return err
	}
	if m.Kind == cache.KindFile {
		return in.exportFile(ctx, v, m.Files[0], path, os.FileMode(catalog.Perm(v.Mode)), progress)
	}
	tmp := path + partialSuffix
	os.RemoveAll(tmp)
	for _, f := range m.Files {
		p := filepath.Join(tmp, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			os.RemoveAll(tmp)
			return unpartial(err, tmp, path)
		}
		mode := os.FileMode(f.Mode)
		if mode == 0 {
			mode = 0o644
		}
		if err := in.exportFile(ctx, v, f, p, mode, progress); err != nil {
			os.RemoveAll(tmp)
			return unpartial(err, tmp, path)
		}
	}
	if overwrite {
		if err := os.RemoveAll(path); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("cannot replace %s: %w", path, errors.Unwrap(err))
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("cannot write %s: %w", path, errors.Unwrap(err))
	}
	return nil
}

// partialSuffix names what a get is writing beside its target.
const partialSuffix = ".lamina-partial"

// exportFile writes f, a file of v, to path by way of a partial file
// beside it, removed on any failure.
func (in *Instance) exportFile(ctx context.Context, v catalog.Version, f cache.File, path string, mode os.FileMode, progress cache.Progress) error {
	tmp := path + partialSuffix
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return unpartial(err, tmp, path)
	}
	err = in.copyOut(ctx, v, f, out, progress)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return unpartial(err, tmp, path)
	}
	return nil
}

// unpartial names path, not the partial file tmp beside it, in err: the
// user never sees the temporary name.
func unpartial(err error, tmp, path string) error {
	var le *os.LinkError
	if errors.As(err, &le) {
		return fmt.Errorf("cannot write %s: %w", path, le.Err)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Path, tmp) {
		return &fs.PathError{Op: pe.Op, Path: path + strings.TrimPrefix(pe.Path, tmp), Err: pe.Err}
	}
	return err
}
