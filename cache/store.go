package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/storage"
	"golang.org/x/sync/errgroup"
)

// Objects is the part of a storage backend the Store uses.
type Objects interface {
	Put(ctx context.Context, name string, data []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
	Stat(ctx context.Context, name string) (storage.Info, error)
	Sync(ctx context.Context) error
}

// Store reads and writes chunked content. It is safe for concurrent use.
type Store struct {
	obj     Objects
	params  Params
	workers int

	known sync.Map // ref.Digest → struct{}: chunks known to be stored

	mu        sync.Mutex // guards manifests
	manifests map[ref.Digest]*Manifest
}

// NewStore returns a Store over obj that chunks with p.
func NewStore(obj Objects, p Params) (*Store, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return &Store{obj: obj, params: p, workers: max(2, runtime.GOMAXPROCS(0)), manifests: map[ref.Digest]*Manifest{}}, nil
}

// PutStats counts what a Put did.
type PutStats struct {
	Chunks      int   // chunks in the content
	NewChunks   int   // chunks that were not stored before
	Bytes       int64 // bytes of content
	StoredBytes int64 // bytes written to storage (after compression)
}

func (s *PutStats) add(o PutStats) {
	s.Chunks += o.Chunks
	s.NewChunks += o.NewChunks
	s.Bytes += o.Bytes
	s.StoredBytes += o.StoredBytes
}

// Progress is told how many more bytes have been read; it may be nil.
type Progress func(n int64)

// PutFile chunks r, stores the chunks it does not already hold, and returns
// the file's entry. Nothing is durable until Sync.
func (s *Store) PutFile(ctx context.Context, r io.Reader, progress Progress) (File, PutStats, error) {
	ch, err := NewChunker(r, s.params)
	if err != nil {
		return File{}, PutStats{}, err
	}
	var (
		f     File
		st    PutStats
		mu    sync.Mutex // guards st and f.Chunks
		whole = ref.NewHasher()
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.workers)
	for i := 0; ; i++ {
		data, err := ch.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = g.Wait()
			return File{}, PutStats{}, err
		}
		if gctx.Err() != nil {
			break
		}
		whole.Write(data)
		f.Size += int64(len(data))
		if progress != nil {
			progress(int64(len(data)))
		}
		bp := bufPool.Get().(*[]byte)
		buf := append((*bp)[:0], data...)
		mu.Lock() // workers write into f.Chunks; append may move it
		f.Chunks = append(f.Chunks, Chunk{Size: int64(len(buf))})
		mu.Unlock()
		idx := i
		g.Go(func() error {
			defer func() { *bp = buf[:0]; bufPool.Put(bp) }()
			d, one, err := s.putChunk(gctx, buf)
			if err != nil {
				return err
			}
			mu.Lock()
			f.Chunks[idx].Digest = d
			st.add(one)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return File{}, PutStats{}, err
	}
	if err := ctx.Err(); err != nil {
		return File{}, PutStats{}, err
	}
	f.Digest = whole.Digest()
	if f.Chunks == nil {
		f.Chunks = []Chunk{}
	}
	return f, st, nil
}

// putChunk stores one chunk unless it is already there.
func (s *Store) putChunk(ctx context.Context, data []byte) (ref.Digest, PutStats, error) {
	d := ref.Sum(data)
	st := PutStats{Chunks: 1, Bytes: int64(len(data))}
	if _, ok := s.known.Load(d); ok {
		return d, st, nil
	}
	name := chunkName(d)
	if _, err := s.obj.Stat(ctx, name); err == nil {
		s.known.Store(d, struct{}{})
		return d, st, nil
	} else if !storage.IsNotFound(err) {
		return d, st, err
	}
	bp := bufPool.Get().(*[]byte)
	obj := encodeChunk(*bp, data)
	err := s.obj.Put(ctx, name, obj)
	st.NewChunks, st.StoredBytes = 1, int64(len(obj))
	*bp = obj[:0]
	bufPool.Put(bp)
	if err != nil {
		return d, st, err
	}
	s.known.Store(d, struct{}{})
	return d, st, nil
}

// PutFolder stores every regular file under dir and returns the folder's
// manifest (not yet saved). Symbolic links and special files are refused:
// a folder artifact holds data, not pointers to elsewhere.
func (s *Store) PutFolder(ctx context.Context, dir string, progress Progress) (*Manifest, PutStats, error) {
	m := &Manifest{Kind: KindFolder, Files: []File{}}
	var st PutStats
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file (folder artifacts hold only files and folders)", p)
		}
		rel, _ := filepath.Rel(dir, p)
		fh, err := os.Open(p)
		if err != nil {
			return err
		}
		defer fh.Close()
		info, err := fh.Stat()
		if err != nil {
			return err
		}
		f, one, err := s.PutFile(ctx, fh, progress)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		f.Path = filepath.ToSlash(rel)
		f.Mode = uint32(info.Mode().Perm())
		m.Files = append(m.Files, f)
		st.add(one)
		return nil
	})
	if err != nil {
		return nil, PutStats{}, err
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	return m, st, nil
}

// SaveManifest stores m and returns its name.
func (s *Store) SaveManifest(ctx context.Context, m *Manifest) (ref.Digest, error) {
	if err := m.validate(); err != nil {
		return ref.Digest{}, err
	}
	b, d, err := encodeManifest(m)
	if err != nil {
		return d, err
	}
	if err := s.obj.Put(ctx, manifestName(d), encoder.EncodeAll(b, nil)); err != nil {
		return d, err
	}
	s.remember(d, m)
	return d, nil
}

// LoadManifest fetches, verifies and decodes the manifest named d.
func (s *Store) LoadManifest(ctx context.Context, d ref.Digest) (*Manifest, error) {
	s.mu.Lock()
	m := s.manifests[d]
	s.mu.Unlock()
	if m != nil {
		return m, nil
	}
	obj, err := s.obj.Get(ctx, manifestName(d))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	b, err := decoder.DecodeAll(obj, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", ErrCorrupt, d, err)
	}
	if got := ref.Sum(b); got != d {
		return nil, fmt.Errorf("%w: manifest %s has digest %s", ErrCorrupt, d, got)
	}
	if m, err = DecodeManifest(b); err != nil {
		return nil, err
	}
	s.remember(d, m)
	return m, nil
}

func (s *Store) remember(d ref.Digest, m *Manifest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.manifests) > 1024 {
		clear(s.manifests)
	}
	s.manifests[d] = m
}

// Sync makes everything stored so far durable.
func (s *Store) Sync(ctx context.Context) error { return s.obj.Sync(ctx) }

// ReadChunk fetches one chunk and verifies it against its digest.
func (s *Store) ReadChunk(ctx context.Context, c Chunk, dst []byte) ([]byte, error) {
	obj, err := s.obj.Get(ctx, chunkName(c.Digest))
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", c.Digest, err)
	}
	return decodeChunk(dst, obj, c.Digest)
}

// ChunkNames lists the storage names of every chunk of m, for gc.
func ChunkNames(m *Manifest, into map[string]struct{}) {
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			into[chunkName(c.Digest)] = struct{}{}
		}
	}
}

// ManifestName is the storage name of the manifest with digest d, for gc.
func ManifestName(d ref.Digest) string { return manifestName(d) }

// Reader reads one file's content through its chunk list.
type Reader struct {
	s       *Store
	f       File
	offsets []int64 // offsets[i] is where chunk i starts
	pos     int64

	readahead int
	mu        sync.Mutex // guards last
	last      struct {
		i    int
		data []byte
	}
}

// Open returns a Reader over f.
func (s *Store) Open(f File) *Reader {
	r := &Reader{s: s, f: f, offsets: make([]int64, len(f.Chunks)), readahead: 2 * s.workers}
	var off int64
	for i, c := range f.Chunks {
		r.offsets[i] = off
		off += c.Size
	}
	r.last.i = -1
	return r
}

// Size is the file's length.
func (r *Reader) Size() int64 { return r.f.Size }

func (r *Reader) chunk(ctx context.Context, i int) ([]byte, error) {
	r.mu.Lock()
	if r.last.i == i {
		d := r.last.data
		r.mu.Unlock()
		return d, nil
	}
	r.mu.Unlock()
	d, err := r.s.ReadChunk(ctx, r.f.Chunks[i], nil)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.last.i, r.last.data = i, d
	r.mu.Unlock()
	return d, nil
}

// ReadAtContext reads len(p) bytes at off, fetching only the chunks it needs.
func (r *Reader) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off >= r.f.Size {
		return 0, io.EOF
	}
	i := sort.Search(len(r.offsets), func(i int) bool { return r.offsets[i] > off }) - 1
	n := 0
	for n < len(p) && i < len(r.offsets) {
		d, err := r.chunk(ctx, i)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], d[off+int64(n)-r.offsets[i]:])
		i++
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// ReadAt implements io.ReaderAt.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	return r.ReadAtContext(context.Background(), p, off)
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.pos)
	r.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// WriteToContext copies the whole file to w, fetching chunks ahead in
// parallel and writing them in order.
func (r *Reader) WriteToContext(ctx context.Context, w io.Writer, progress Progress) (int64, error) {
	type result struct {
		data []byte
		err  error
	}
	g, gctx := errgroup.WithContext(ctx)
	queue := make(chan chan result, r.readahead)
	g.Go(func() error {
		defer close(queue)
		sem := make(chan struct{}, r.readahead)
		for _, c := range r.f.Chunks {
			res := make(chan result, 1)
			select {
			case queue <- res:
			case <-gctx.Done():
				return gctx.Err()
			}
			sem <- struct{}{}
			go func(c Chunk) {
				d, err := r.s.ReadChunk(gctx, c, nil)
				<-sem
				res <- result{d, err}
			}(c)
		}
		return nil
	})
	var written int64
	var hash = ref.NewHasher()
	g.Go(func() error {
		for res := range queue {
			out := <-res
			if out.err != nil {
				return out.err
			}
			hash.Write(out.data)
			n, err := w.Write(out.data)
			written += int64(n)
			if err != nil {
				return err
			}
			if progress != nil {
				progress(int64(n))
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return written, err
	}
	if got := hash.Digest(); got != r.f.Digest {
		return written, fmt.Errorf("%w: content has digest %s, want %s", ErrCorrupt, got, r.f.Digest)
	}
	return written, nil
}
