package catalogrpc

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

// ServerOptions tune a Server. Every field is optional.
type ServerOptions struct {
	// ID identifies what is served (the instance id); a client that expects
	// another ID refuses the server.
	ID string
	// Build identifies the serving program (a build of it), for clients
	// to compare with their own: Hello.Build.
	Build string
	// BuildTime is the time of the commit the program was built from:
	// Hello.BuildTime.
	BuildTime string
	// Changed is told the keys whose namespace entry a call changed (Save of
	// a new version, Trash, Restore, Purge, Annotate; a new collection
	// version as catalog.CollectionChange). It runs after the call
	// succeeded and before the reply is sent, so a client that sees its call
	// return knows the change has been passed on. It must not block for long.
	Changed func(keys []string)
	// Status returns what the Status call reports (a mount's figures, say).
	Status func() any
	// Snapshot writes a consistent copy of the catalog's file to a path
	// (catalog.Bolt.Snapshot), for a client that reads the records
	// themselves (export-catalog); nil: the Snapshot call fails.
	Snapshot func(ctx context.Context, path string) error
	// Cache acts on the disk cache of the serving process (a mount daemon
	// over S3) and reports on it, so that `lamina cache clear` and `limit`
	// reach the blocks it has open; nil: the Cache call fails.
	Cache func(CacheArgs) (any, error)
	// Logger receives connection errors; nil discards them.
	Logger *slog.Logger
}

// Server serves one catalog to any number of connections. It does not own
// the catalog: Close stops serving and leaves the catalog open.
type Server struct {
	cat  catalog.Catalog
	opts ServerOptions

	ctx    context.Context // canceled by Close; every call runs under it
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per connection

	mu        sync.Mutex // guards listeners, conns, closed
	listeners []net.Listener
	conns     map[net.Conn]struct{}
	closed    bool
}

// NewServer returns a Server for cat.
func NewServer(cat catalog.Catalog, o ServerOptions) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cat: cat, opts: o, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
}

// ErrServing is returned by Listen when a live server already answers on
// the socket.
var ErrServing = errors.New("catalogrpc: a server already answers on this socket")

// Listen creates the Unix socket at path, readable and writable by its owner
// only, in a folder only the owner can enter. A socket file left by a dead
// server is replaced; one a live server answers on is ErrServing.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("catalogrpc: %w", err)
	}
	if err := os.Chmod(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("catalogrpc: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%w: %s", ErrServing, path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("catalogrpc: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("catalogrpc: %w", err)
	}
	return l, nil
}

// Serve accepts connections on l until Close; it returns nil after Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("catalogrpc: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// Close stops accepting, cancels calls in progress, closes every connection
// and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	dec := json.NewDecoder(bufio.NewReader(c))
	bw := bufio.NewWriter(c)
	enc := json.NewEncoder(bw)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			return // the client went away (or spoke nonsense)
		}
		if err := s.handle(req, enc); err != nil {
			s.opts.Logger.Debug("catalogrpc: connection dropped", "err", err)
			return
		}
		if err := bw.Flush(); err != nil {
			return
		}
	}
}

// tooOld is the answer to a write from a client that does not say its
// protocol (request.P): a lamina built before its client checked the
// server's build, which wrote through a daemon of another build with no
// check (a permanent delete wrote no purge record).
func (s *Server) tooOld() error {
	exe, _ := os.Executable()
	return fmt.Errorf("this lamina is too old for the mount's daemon (pid %d, build %s, the program %s): the daemon could drop what one of them does not know of a write, so writes are refused; upgrade this lamina, or use the daemon's (reads go on)",
		os.Getpid(), cmp.Or(s.opts.Build, "not said"), cmp.Or(exe, "not known"))
}

// handle runs one call and writes its answer; an error means the connection
// is unusable.
func (s *Server) handle(req request, enc *json.Encoder) error {
	ctx := s.ctx
	reply := func(res any, err error) error {
		if err != nil {
			return enc.Encode(response{E: toWire(err)})
		}
		raw, merr := json.Marshal(res)
		if merr != nil {
			return enc.Encode(response{E: toWire(merr)})
		}
		return enc.Encode(response{R: raw})
	}
	var ka keyArgs
	decode := func(v any) error {
		if len(req.A) == 0 {
			return nil
		}
		return json.Unmarshal(req.A, v)
	}
	if writes[req.M] && req.P == 0 {
		return reply(nil, s.tooOld())
	}
	switch req.M {
	case mHello:
		return reply(Hello{ID: s.opts.ID, PID: os.Getpid(), Build: s.opts.Build, Protocol: Protocol, BuildTime: s.opts.BuildTime}, nil)
	case mStatus:
		var st any
		if s.opts.Status != nil {
			st = s.opts.Status()
		}
		return reply(st, nil)
	case mSave:
		var nvs []catalog.NewVersion
		if err := decode(&nvs); err != nil {
			return reply(nil, err)
		}
		saved, err := s.cat.Save(ctx, nvs)
		if err == nil {
			var keys []string
			for _, sv := range saved {
				if !sv.Unchanged {
					keys = append(keys, sv.Version.Key)
				}
			}
			s.changed(keys...)
		}
		return reply(saved, err)
	case mByUID:
		var p string
		if err := decode(&p); err != nil {
			return reply(nil, err)
		}
		return reply(s.cat.ByUID(ctx, p))
	case mByKey:
		if err := decode(&ka); err != nil {
			return reply(nil, err)
		}
		return reply(s.cat.ByKey(ctx, ka.Key, ka.N))
	case mVersions:
		if err := decode(&ka); err != nil {
			return reply(nil, err)
		}
		return reply(s.cat.Versions(ctx, ka.Key, ka.Trash))
	case mList:
		var q catalog.Query
		if err := decode(&q); err != nil {
			return reply(nil, err)
		}
		return reply(s.cat.List(ctx, q))
	case mRestoreWith:
		if err := decode(&ka); err != nil {
			return reply(nil, err)
		}
		e, err := s.cat.RestoreTrashedWith(ctx, ka.Key)
		if err == nil {
			s.changed(e.Key)
		}
		return reply(e, err)
	case mTrash, mRestore, mRestoreNode, mPurge, mPurgeTrash:
		if err := decode(&ka); err != nil {
			return reply(nil, err)
		}
		var res any
		var err error
		switch req.M {
		case mTrash:
			res, err = s.cat.Trash(ctx, ka.Key)
		case mRestore:
			res, err = s.cat.Restore(ctx, ka.Key)
		case mRestoreNode:
			res, err = s.cat.RestoreNode(ctx, ka.Key)
		case mPurgeTrash:
			res, err = s.cat.PurgeTrashed(ctx, ka.Key, ka.Kind)
		default:
			res, err = s.cat.Purge(ctx, ka.Key)
		}
		if err == nil && req.M == mTrash {
			s.changed(ka.Key, catalog.DeleteChange(ka.Key))
		} else if err == nil {
			s.changed(ka.Key)
		}
		return reply(res, err)
	case mTrashList:
		return reply(s.cat.TrashList(ctx))
	case mCache:
		var ca CacheArgs
		if err := decode(&ca); err != nil {
			return reply(nil, err)
		}
		if s.opts.Cache == nil {
			return reply(nil, errors.New("catalogrpc: this process has no disk cache"))
		}
		return reply(s.opts.Cache(ca))
	case mSnapshot:
		var pa pathArgs
		if err := decode(&pa); err != nil {
			return reply(nil, err)
		}
		if s.opts.Snapshot == nil {
			return reply(nil, errors.New("catalogrpc: this catalog has no file to snapshot"))
		}
		return reply(nil, s.opts.Snapshot(ctx, pa.Path))
	case mEach:
		// Collect first: the store's read transaction must not wait on a
		// slow client.
		var all []catalog.Version
		err := s.cat.Each(ctx, func(v catalog.Version) error { all = append(all, v); return nil })
		if err != nil {
			return reply(nil, err)
		}
		for i := range all {
			if err := enc.Encode(response{V: &all[i]}); err != nil {
				return err
			}
		}
		return reply(len(all), nil)
	case mCounts:
		return reply(s.cat.Counts(ctx))
	case mOutbox:
		return reply(s.cat.Outbox(ctx))
	case mOutboxDone:
		var uids []string
		if err := decode(&uids); err != nil {
			return reply(nil, err)
		}
		return reply(nil, s.cat.OutboxDone(ctx, uids))
	case mChildren:
		var p string
		if err := decode(&p); err != nil {
			return reply(nil, err)
		}
		return reply(s.cat.Children(ctx, p))
	}
	if res, err, ok := s.handleWrite(ctx, req.M, decode); ok { // write.go
		return reply(res, err)
	}
	if res, err, ok := s.handleAnnotate(ctx, req.M, req.A); ok { // annotate.go
		return reply(res, err)
	}
	if res, err, ok := s.handleRuns(ctx, req.M, req.A); ok { // runs.go
		return reply(res, err)
	}
	return reply(nil, fmt.Errorf(unknownCall+"%q (is the daemon an older lamina?)", req.M))
}

func (s *Server) changed(keys ...string) {
	if len(keys) > 0 && s.opts.Changed != nil {
		s.opts.Changed(keys)
	}
}
