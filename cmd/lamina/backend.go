package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog/catalogrpc"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/storage"
	"github.com/lamina-bio/lamina/storage/retry"
	s3b "github.com/lamina-bio/lamina/storage/s3"
)

// remote is the machinery in front of an S3 backend: the local cache of
// fetched blocks and the queue of uploads. Nil for local storage.
type remote struct {
	raw   *s3b.Backend
	retry *retry.Backend // its Health: does the server answer
	disk  *cache.DiskCache
	up    *cache.Uploads
	// owner is read before the queue uploads an object other than a pack
	// (queueAllow): once another instance owns the storage, only packs go.
	owner *instance.OwnerWatch
	quiet bool // takenOverUploads said what became of the queue
	// namer, once set (the mount, when its catalog is open), names the
	// versions that use lost packs for the record of lost uploads.
	namer atomic.Pointer[func(ctx context.Context, packs map[string]bool) []string]
}

// packWait is how long a read over S3 waits for a pack that another
// workstation's version names but its upload queue has not put yet: set
// for a shared catalog in the mount daemon, and in the CLI, which may read
// what the daemon of its own machine has not uploaded yet. The store waits
// once per pack (cache.PackGaveUpFor), and not for versions saved more
// than cache.PackUploadWindow ago. LAMINA_PACK_WAIT (a duration) sets
// another: for tests.
func packWait() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("LAMINA_PACK_WAIT")); err == nil && d >= 0 {
		return d
	}
	return 30 * time.Second
}

type backendOptions struct {
	syncUpload bool  // Sync waits for the uploads (the CLI; mount --sync-upload)
	keep       bool  // what is uploaded stays in the block cache (the mount)
	own        bool  // the mount daemon: its cache alone evicts, under its limit
	check      bool  // the bucket must answer now (init, connect, mount)
	cacheSize  int64 // overrides the settings when > 0
	log        *slog.Logger
}

// openBackend wires the storage of s. For S3 the stack is, from the content
// store down: DiskCache (blocks fetched, LRU, read-ahead) → Uploads (staged
// writes, persistent queue) → retry (backoff with jitter) → S3.
func openBackend(ctx context.Context, s instance.Settings, o backendOptions) (storage.Backend, *remote, error) {
	if !strings.HasPrefix(s.Storage, "s3://") {
		b, err := storage.OpenLocal(s.Storage)
		return b, nil, err
	}
	raw, err := openS3(ctx, s, o.check)
	if err != nil {
		return nil, nil, err
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	policy, err := retryPolicy()
	if err != nil {
		return nil, nil, err
	}
	rb := retry.New(raw, policy, o.log)
	owner := instance.New(s, nil, rb, nil).WatchOwner(rb, ownerCheckEvery(), nil)
	rem := &remote{raw: raw, retry: rb, owner: owner}
	up, err := cache.OpenUploads(rb, s.UploadDir(), cache.UploadOptions{SyncUpload: o.syncUpload, Logger: o.log, Allow: queueAllow(owner),
		OnLost: func(names []string) { rem.recordLost(s, names, o.log) }})
	if err != nil {
		return nil, nil, err
	}
	size := s.CacheSize
	if o.cacheSize > 0 {
		size = o.cacheSize
	}
	// One cache, one limit, one owner: while a mount daemon runs, its
	// cache owns the folder and evicts under its limit (mount
	// --cache-size, cache limit); a CLI command's cache only adds the
	// blocks it fetches and tells the daemon, which counts them.
	do := cache.DiskCacheOptions{Limit: size, Logger: o.log, KeepRecent: cache.KeepRecentForReads, Own: o.own}
	if !o.own {
		do.Nudge = func() { nudgeDaemon(s) }
	}
	disk, err := cache.OpenDiskCache(up, s.CacheDir, do)
	if err != nil {
		up.Close()
		return nil, nil, err
	}
	// What the mount uploads stays readable with the server away: its
	// bytes go to the cache rather than leave with the staged file (or,
	// with --sync-upload, with the memory they were sent from). The CLI
	// does not: a `lamina save` of a large file would write it all into
	// the cache too, and its bytes are still in the user's file.
	if o.keep {
		up.OnUploaded(disk.Keep)
	}
	rem.disk, rem.up = disk, up
	return disk, rem, nil
}

// queueAllow is the upload queue's check before it uploads a staged
// object: what may go to storage another instance took over meanwhile.
// The queue sits below the mount's owner guard (and a CLI command opens it
// before it reads the owner), so without it the queue wrote whatever it
// held after a take-over: the old catalog's records too. A pack (and an
// ontology object named by its digest) goes whoever owns the storage: it
// is immutable, and the new owner's catalog may name it (imported from an
// export made while it waited here). Anything else waits for a read of
// the owner (one GET per such upload: records go once per save, or a
// minute of a mount) and is held, kept staged, once another owns it.
func queueAllow(owner *instance.OwnerWatch) func(context.Context, string) error {
	return func(ctx context.Context, name string) error {
		if instance.AddableAfterTakeOver(name) {
			return nil
		}
		check := owner.Check
		if cache.WritingThrough(ctx) {
			// A command's own put: free while its read of the owner at
			// the start is fresh (a read per put doubled a save's round
			// trips, and one slower than 3 s kept its record out).
			check = owner.MayWrite
		}
		if err := check(ctx); errors.Is(err, instance.ErrStorageTaken) {
			return fmt.Errorf("%w: %w", cache.ErrHold, err)
		} else if err != nil {
			return err // not answering: a failed attempt, retried
		}
		return nil
	}
}

// nudgeDaemon asks the instance's mount daemon, if one answers, to count
// the blocks this process put in the cache folder and evict down to its
// limit: any cache call does (mount.go rescans before each).
func nudgeDaemon(s instance.Settings) {
	dirs, err := instance.UserDirs()
	if err != nil {
		return
	}
	if st, err := readState(dirs, s.Name); err == nil && stoppedState(processState(st.PID)) {
		return // stopped (SIGSTOP): it would answer nothing; it counts them when asked next
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := catalogrpc.Dial(ctx, dirs.DaemonSocket(s), s.ID)
	if err != nil {
		return
	}
	defer cl.Close()
	cl.Cache(ctx, catalogrpc.CacheArgs{Op: "info"})
}

// nameLost has the record of lost uploads name the versions of in that
// use the lost packs.
func (r *remote) nameLost(in *instance.Instance) {
	f := func(ctx context.Context, packs map[string]bool) []string {
		vs, _ := in.VersionsInPacks(ctx, packs)
		var out []string
		for _, v := range vs {
			out = append(out, v.Ref())
		}
		return out
	}
	r.namer.Store(&f)
}

// recordLost keeps the names of staged objects that vanished before their
// upload in the instance's record of lost uploads (instance.LostUploads),
// which `lamina status` shows until the user acts, then adds the versions
// that use them (a scan of the catalog, in the background).
func (r *remote) recordLost(s instance.Settings, names []string, log *slog.Logger) {
	if err := s.RecordLost(names, nil); err != nil {
		log.Error("uploads: cannot record what was lost", "err", err)
	}
	namer := r.namer.Load()
	if namer == nil {
		return
	}
	packs := map[string]bool{}
	for _, n := range names {
		if id, ok := cache.PackOf(n); ok {
			packs[id] = true
		}
	}
	if len(packs) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		vs := (*namer)(ctx, packs)
		if len(vs) == 0 {
			return
		}
		log.Error("uploads: versions whose data was lost before it reached S3 (they cannot be read)", "versions", vs)
		if err := s.RecordLost(nil, vs); err != nil {
			log.Error("uploads: cannot record what was lost", "err", err)
		}
	}()
}

// serverAway says whether err means the S3 server cannot serve now: not
// reached, or answering what its retries would wait out (503, 500, a
// timeout), as opposed to an answer that stays (denied, no such bucket).
// The mount starts anyway then, warning, as docs/design.md says.
func serverAway(err error) bool { return storage.IsUnreachable(err) || s3b.Retryable(err) }

// retryPolicy is retry.DefaultPolicy (about half a minute per call, a
// minute at most) unless LAMINA_S3_RETRY says "ATTEMPTS,MAXWAIT[,BUDGET]",
// e.g. "3,50ms" or "3,50ms,4s": for tests, and for a mount that should
// fail fast rather than wait out an outage.
func retryPolicy() (retry.Policy, error) {
	v := os.Getenv("LAMINA_S3_RETRY")
	if v == "" {
		return retry.DefaultPolicy, nil
	}
	bad := fmt.Errorf("LAMINA_S3_RETRY=%q: want ATTEMPTS,MAXWAIT[,BUDGET] such as 3,50ms or 3,50ms,10s", v)
	f := strings.Split(v, ",")
	if len(f) < 2 || len(f) > 3 {
		return retry.Policy{}, bad
	}
	n, err := strconv.Atoi(strings.TrimSpace(f[0]))
	d, derr := time.ParseDuration(strings.TrimSpace(f[1]))
	if err != nil || derr != nil || n < 1 || d <= 0 {
		return retry.Policy{}, bad
	}
	p := retry.Policy{Attempts: n, Base: min(d, retry.DefaultPolicy.Base), Max: d, Elapsed: retry.DefaultPolicy.Elapsed}
	if len(f) == 3 {
		if p.Elapsed, err = time.ParseDuration(strings.TrimSpace(f[2])); err != nil || p.Elapsed <= 0 {
			return retry.Policy{}, bad
		}
	}
	p.Away = min(p.Elapsed, retry.DefaultPolicy.Away)
	return p, nil
}

// openS3 opens the bucket of an s3:// instance with the standard
// credential chain.
func openS3(ctx context.Context, s instance.Settings, check bool) (*s3b.Backend, error) {
	bucket, prefix, err := s3b.ParseURL(s.Storage)
	if err != nil {
		return nil, err
	}
	cfg := s3b.Config{Bucket: bucket, Prefix: prefix, NoBucketCheck: !check}
	if s.S3 != nil {
		cfg.Endpoint, cfg.Region, cfg.PathStyle = s.S3.Endpoint, s.S3.Region, s.S3.PathStyle
	}
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return s3b.Open(octx, cfg)
}

// The storage's health in `lamina status` and `umount` is fresh: when the
// server has not answered for healthMaxAge, one HeadBucket bounded by
// probeTimeout asks it (retry.Probe), so a server that died or stopped
// shows as not answering within seconds, not once a hung upload times out.
const (
	healthMaxAge = 3 * time.Second
	probeTimeout = 2 * time.Second
)

// health is what the storage says now (retry.Probe).
func (r *remote) health(ctx context.Context) retry.Health {
	return r.retry.Probe(ctx, healthMaxAge, probeTimeout, r.raw.Ping)
}

// drain waits for the upload queue to empty, telling w about progress,
// and gives up when nothing moves for stall (the uploads stay staged and
// resume at the next start).
func (r *remote) drain(ctx context.Context, stall time.Duration, progress func(cache.Pending)) error {
	if r == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	last, lastMove := r.up.Pending(), time.Now()
	return r.up.WaitIdle(ctx, func(p cache.Pending) {
		if p.Bytes != last.Bytes || p.Uploaded != last.Uploaded {
			last, lastMove = p, time.Now()
		}
		if time.Since(lastMove) > stall {
			cancel()
		}
		if progress != nil {
			progress(p)
		}
	})
}

func (r *remote) close() {
	if r != nil {
		r.disk.Close() // read-ahead in flight
		r.up.Close()
	}
}

// parseSize reads "20GB", "512MiB", "1.5G", "1000000".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"TIB", 1 << 40}, {"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.m
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err == nil && f < 0 {
		return 0, fmt.Errorf("bad size %q: a size must be positive", s)
	}
	if err != nil {
		return 0, fmt.Errorf("bad size %q: use a number with an optional unit, like 20GB or 512MiB", s)
	}
	return int64(f * float64(mult)), nil
}

// parseCacheSize reads a cache bound. Zero is refused: the cache is where
// reads of S3 data land, so a mount cannot work without one, and a saved 0
// would read back as the default.
func parseCacheSize(v string) (int64, error) {
	n, err := parseSize(v)
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("cache size %q: give a size, e.g. 1GB; a cache is needed for reads", v)
	}
	return n, nil
}

func describePending(p cache.Pending) string {
	s := fmt.Sprintf("%d objects (%s) waiting for upload", p.Objects, humanBytes(p.Bytes))
	if p.Failures > 0 && p.LastError != "" {
		s += fmt.Sprintf("; %d failed attempts, last: %s", p.Failures, p.LastError)
	}
	return s
}

// checkEndpoint refuses an S3 endpoint URL carrying user info
// (http://KEY:SECRET@host): the URL is stored in the instance's settings
// and shown by `lamina info`, so a secret in it would leak.
func checkEndpoint(ep string) error {
	if ep == "" {
		return nil
	}
	u, err := url.Parse(ep)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", ep, err)
	}
	if u.User != nil {
		return errors.New("the URL holds a user name or secret, which would be stored in the instance's settings and shown by `lamina info`; give the endpoint without it (e.g. " + u.Scheme + "://" + u.Host + ") and the credentials through the AWS chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials (AWS_PROFILE)")
	}
	return nil
}

// s3Flags puts `lamina init`'s S3 and cache flags into s.
func s3Flags(c interface {
	String(string) string
	Bool(string) bool
	IsSet(string) bool
}, s *instance.Settings) error {
	isS3 := strings.HasPrefix(s.Storage, "s3://")
	if !isS3 && (c.IsSet("endpoint") || c.IsSet("region") || c.IsSet("path-style")) {
		return exitf(2, "--endpoint, --region and --path-style are for s3:// storage")
	}
	if isS3 {
		if _, _, err := s3b.ParseURL(s.Storage); err != nil {
			return exitf(2, "%v", err)
		}
		ep := c.String("endpoint")
		if ep != "" && !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
			return exitf(2, "--endpoint %q: give a URL such as http://127.0.0.1:7070", ep)
		}
		if err := checkEndpoint(ep); err != nil {
			return exitf(2, "--endpoint: %v", err)
		}
		s.S3 = &instance.S3Settings{Endpoint: ep, Region: c.String("region"), PathStyle: c.Bool("path-style")}
	}
	if v := c.String("cache-size"); v != "" {
		n, err := parseCacheSize(v)
		if err != nil {
			return exitf(2, "--cache-size: %v", err)
		}
		if !isS3 {
			return errLocalCache("--cache-size")
		}
		s.CacheSize = n
	}
	return nil
}

// errLocalCache refuses an S3-only flag for an instance whose storage is a
// local folder (read in place: no cache, no uploads), as --endpoint is.
func errLocalCache(flag string) error {
	return exitf(2, "%s is for s3:// storage: a local folder is read in place, with no cache and no uploads", flag)
}

// describeS3 says how an S3 instance is reached and where its credentials
// come from, never what they are.
func describeS3(s instance.Settings, in *instance.Instance) string {
	var parts []string
	if s.S3 != nil {
		if s.S3.Endpoint != "" {
			ep := s.S3.Endpoint
			if u, err := url.Parse(ep); err == nil && u.User != nil {
				u.User = nil // saved before init refused user info: never shown
				ep = u.String() + " (holds user info: remove it from the settings)"
			}
			parts = append(parts, "endpoint "+ep)
		}
		if s.S3.Region != "" {
			parts = append(parts, "region "+s.S3.Region)
		}
		if s.S3.PathStyle {
			parts = append(parts, "path-style")
		}
	}
	if src := credentialSource(in.Backend); src != "" {
		parts = append(parts, "credentials from "+src)
	}
	return strings.Join(parts, ", ")
}

// credentialSource finds the S3 backend under the decorators and asks it.
func credentialSource(b storage.Backend) string {
	for b != nil {
		if cs, ok := b.(interface{ CredentialSource() string }); ok {
			return cs.CredentialSource()
		}
		u, ok := b.(interface{ Unwrap() storage.Backend })
		if !ok {
			return ""
		}
		b = u.Unwrap()
	}
	return ""
}
