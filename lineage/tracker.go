package lineage

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// EnvRun is the environment variable that carries the run uid to a run's
// processes.
const EnvRun = "LAMINA_RUN"

// TrackerOptions tune a Tracker; zero values take the defaults noted.
type TrackerOptions struct {
	Logger     *slog.Logger
	FlushEvery time.Duration // how often inputs are written; default 200 ms
	MaxCached  int           // processes remembered; default 4096
	// EnvDeadline bounds reading a caller's environment (it may wait on
	// the caller's mmap lock); default 20 ms. A read that times out is
	// asked again at the caller's next call, not taken for "no run".
	EnvDeadline time.Duration
	// Mountpoint is the mount's folder: a Snakemake run working outside
	// it has its job records watched there (recordWatch). Empty: none are.
	Mountpoint string
	// Shared: other daemons share the catalog (PostgreSQL), so a run may
	// be registered with one of them and this tracker hear of it only by
	// its start's notification (Changed), which may come after the run's
	// first open through this mount. A process whose LAMINA_RUN names a
	// run this tracker does not know has that run looked up in the
	// catalog at its first open (lookUp), and Caller is no longer free
	// with no run registered: every process pays one resolution.
	Shared bool
	// MissWait bounds how long an open waits for such a lookup; default
	// 2 s. Past it the open goes on unattributed (the lookup goes on).
	MissWait time.Duration
}

// Tracker attributes a mount's calls to runs. It lives in the mount daemon:
// `lamina run` registers a run through the catalog socket (Wrap) with its
// root process and cgroup, and the file system asks Caller on OPEN, CREATE
// and namespace calls and keeps the answer on the file handle. Inputs are
// written in batches off the request path. Safe for concurrent use.
//
// Lock order: jobMu before mu. A recordWatch's own mutex is taken with
// jobMu held or alone, never with mu held nor mu with it.
type Tracker struct {
	cat    catalog.Catalog
	opts   TrackerOptions
	active atomic.Int32               // registered live runs; 0 makes Caller free
	links  atomic.Pointer[LinkReader] // the mount's links (SetLinks)
	// scratch gives where the mount keeps a scratch file (SetScratch).
	scratch atomic.Pointer[ScratchReader]
	// adopt credits open write handles to a run (SetAdopter).
	adopt atomic.Pointer[WriterAdopter]
	// readProc reads /proc/TID/NAME for Caller (tests make it fail).
	readProc func(tid int, name string) ([]byte, error)

	jobMu sync.Mutex // serialises making child runs for Snakemake jobs
	// resumeMu serialises Resume (the daemon's start, watch): ended is
	// its.
	resumeMu sync.Mutex

	// flushMu serialises flushes: a run's end waits for a flush already
	// writing its inputs, or its record would be read without them.
	flushMu sync.Mutex
	// nowSem bounds the handlers' own writes (writeNow) under way.
	nowSem chan struct{}

	mu      sync.Mutex // guards the fields below
	roots   map[int]*root
	byRun   map[string]*root
	parents map[string]string // run → parent run, of every run seen
	sources map[string]source // run → its transform's source
	// jobs holds, by split run, the processes of its jobs seen, oldest
	// first. Not keyed by pid: a job's number may be another job's once it
	// exited, and the first job's run must still end with its pipeline.
	jobs map[string][]*jobProc
	// outputs holds, by split run, the keys its jobs' processes opened to
	// write and the job run that did last (Wrote): Snakemake's record of
	// one (ScratchRenamed) says that job is done.
	outputs map[string]map[string]string
	// records holds, by split run, the watch of its Snakemake's records
	// when they are written outside the mount.
	records map[string]*recordWatch
	// gen counts the cache's resets: an answer resolved across one (a
	// run registered meanwhile) may be stale, and is not kept.
	gen uint64
	// left holds, by pid, the job processes still running when their
	// Snakemake run ended with processes left in its cgroup (Snakemake
	// killed): what they do is their job's, until the run stops lingering.
	left    map[int]leftJob
	cache   map[int]*proc // tid → answer
	pending map[string][]string
	// failing holds the runs whose inputs the catalog failed to record
	// last (logged once, until a write succeeds).
	failing  map[string]bool
	recorded map[string]map[string]bool // run → versions already queued
	// reran holds, by run, the versions it or a run under it wrote again
	// unchanged (Reproduced): read after that, a version is the run's own
	// output, not its input. A read before stays one (it is queued).
	reran map[string]map[string]bool
	// adopted holds, by resumed split run, the job runs an earlier daemon
	// started for it and left running: they end with the run (finish).
	adopted map[string][]string
	// ended, non-nil while Resume runs, collects the runs finished
	// meanwhile, so that Resume never registers a run that just ended.
	ended map[string]bool
	// gone holds the runs this tracker stopped tracking, and when: a
	// later Resume (watch) may read one still running in the catalog (its
	// end not written yet) and must not register it again.
	gone map[string]time.Time
	// daemon names this process in the job runs it makes and the runs
	// whose root it registers (catalog.Run.Daemon), so that a later
	// daemon knows them orphaned once this one is gone, and leaves to it
	// the judgment that a run whose root exited was abandoned (reap).
	daemon string

	// started holds the runs Changed was told of that watch has not
	// read yet; rescan, that it must look at every run.
	started map[string]bool
	rescan  bool
	wake    chan struct{} // Changed → watch
	// looking holds, by run, the opens waiting for watch to look up a run
	// a marker names (lookUp): closed once watch has. missed holds the
	// markers looked up that named no run to register here (not found,
	// ended, of another host), not looked up again.
	looking map[string]chan struct{}
	missed  map[string]bool
	// unreadable holds when a lookup last failed to read the run (the
	// catalog away): the opens of that marker meanwhile go on at once
	// rather than each wait MissWait for an answer that is not coming.
	unreadable map[string]time.Time

	stop     chan struct{}
	done     chan struct{}
	watching sync.WaitGroup // watch
}

type root struct {
	run catalog.Run
	fd  pidfd
	// lingering: the run ended while processes were left in its cgroup
	// (a command's `… &`, `setsid nohup`); they still work for it until
	// the cgroup empties (reap), and fd is closed.
	lingering bool
	// exited is when reap first saw the root gone while another live
	// daemon had the run (ownerGrace); zero until then.
	exited time.Time
}

// ownerGrace is how long a daemon that tracks a run another live daemon
// registered or claimed leaves the run to it once its root exited: that
// daemon, or `lamina run` a moment after, ends it. Tests shorten it.
var ownerGrace = 5 * time.Second

// proc is an answer about one live process or thread.
type proc struct {
	run  string
	fd   pidfd
	argv []string // a job's command line (Tracker.jobs)
}

// jobProc is a process of a Snakemake job (Tracker.jobs).
type jobProc struct {
	proc
	pid int
	// recorded: Snakemake recorded its job done (its metadata), so no
	// later process is another pass of that job.
	recorded bool
	// script: for a `script:` job's process, what its copy of the script
	// says of its job (scriptJob); "" when it could not be read.
	script string
}

// NewTracker returns a Tracker writing to cat; Close stops it.
func NewTracker(cat catalog.Catalog, o TrackerOptions) *Tracker {
	return newTracker(cat, o, DaemonID())
}

// newTracker is NewTracker naming its daemon daemon (tests: two daemons
// in one process).
func newTracker(cat catalog.Catalog, o TrackerOptions, daemon string) *Tracker {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.EnvDeadline == 0 {
		o.EnvDeadline = 20 * time.Millisecond
	}
	if o.FlushEvery == 0 {
		o.FlushEvery = 200 * time.Millisecond
	}
	if o.MaxCached == 0 {
		o.MaxCached = 4096
	}
	if o.MissWait == 0 {
		o.MissWait = 2 * time.Second
	}
	t := &Tracker{readProc: readProc, looking: map[string]chan struct{}{}, missed: map[string]bool{}, unreadable: map[string]time.Time{}, cat: cat, opts: o, roots: map[int]*root{}, byRun: map[string]*root{}, parents: map[string]string{}, sources: map[string]source{},
		jobs: map[string][]*jobProc{}, outputs: map[string]map[string]string{}, records: map[string]*recordWatch{}, left: map[int]leftJob{}, cache: map[int]*proc{}, pending: map[string][]string{}, failing: map[string]bool{}, nowSem: make(chan struct{}, 4), recorded: map[string]map[string]bool{}, reran: map[string]map[string]bool{},
		adopted: map[string][]string{}, started: map[string]bool{}, wake: make(chan struct{}, 1), gone: map[string]time.Time{}, daemon: daemon, stop: make(chan struct{}), done: make(chan struct{})}
	go t.flusher()
	t.watching.Add(1)
	go t.watch()
	return t
}

// SetLinks gives the tracker the mount's links (fs.Mount.LinkTarget): an
// output a Snakemake job wrote through a link in the mount (out -> data,
// out/../x) is matched to the key it wrote. The mount is made after its
// tracker; until then its paths go by name.
func (t *Tracker) SetLinks(links LinkReader) { t.links.Store(&links) }

// ScratchReader returns the file on local disk that holds the mount's
// scratch file at key, false if key is none (fs.Mount.ScratchFile). It
// must not look at the mount through the kernel.
type ScratchReader func(key string) (local string, ok bool)

// SetScratch gives the tracker the mount's scratch files: a `script:`
// job's copy of its script in a working directory in the mount is read
// there (scriptOf). Until then such copies are not read.
func (t *Tracker) SetScratch(r ScratchReader) { t.scratch.Store(&r) }

// scriptOf returns what the copy of a `script:` that the job process pid
// runs says of its job (scriptJob): "" when argv names none or it cannot
// be read. A copy in the mount is read where the mount keeps it (its
// scratch folder), never through the mount: this runs in its handlers.
func (t *Tracker) scriptOf(pid int, argv []string) string {
	p := scriptCopy(argv)
	if p == "" {
		return ""
	}
	if !filepath.IsAbs(p) {
		cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
		if err != nil {
			return ""
		}
		p = filepath.Join(cwd, p)
	}
	if mnt := strings.TrimSuffix(t.opts.Mountpoint, "/"); mnt != "" {
		key, in := KeyResolver(mnt, t.linkReader())(p)
		switch {
		case in:
			r := t.scratch.Load()
			if r == nil {
				return ""
			}
			if p, in = (*r)(key); !in {
				return ""
			}
		case p == mnt || strings.HasPrefix(p, mnt+"/"):
			return "" // in the mount, unresolved
		}
	}
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	// The preamble comes first; 16 MiB bounds a copy made of a huge config.
	b, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return ""
	}
	return scriptJob(b)
}

// WriterAdopter credits to run what the mount's open write handles of key
// that one of the processes openers opened commit from now on, and says
// how many it took (fs.Mount.AdoptWriters).
type WriterAdopter func(key, run string, openers []int) int

// SetAdopter gives the tracker the mount's write handles: a run started
// with Redirects (`lamina run -- cmd > out`) takes the handles its caller
// opened. Until then they are not taken.
func (t *Tracker) SetAdopter(a WriterAdopter) { t.adopt.Store(&a) }

// adoptRedirects credits run r the write handles of the keys of its
// Redirects that its root process (lamina run) or that one's parent (the
// shell that opened them: dash opens a redirect before it forks) opened.
func (t *Tracker) adoptRedirects(r catalog.Run, keys []string) {
	a := t.adopt.Load()
	if a == nil || r.RootPID <= 0 {
		return
	}
	openers := []int{r.RootPID}
	if _, ppid, err := procStatus(r.RootPID); err == nil && ppid > 1 {
		openers = append(openers, ppid)
	}
	for _, k := range keys {
		if (*a)(k, r.UID, openers) == 0 {
			t.opts.Logger.Info("lineage: no open write handle of a run's redirect", "run", r.UID, "key", k)
		}
	}
}

func (t *Tracker) linkReader() LinkReader {
	if l := t.links.Load(); l != nil {
		return *l
	}
	return nil
}

// Close writes the inputs still queued and releases the process handles.
func (t *Tracker) Close() error {
	close(t.stop)
	<-t.done
	t.watching.Wait()
	err := t.flush()
	var watches []*recordWatch
	defer func() {
		for _, w := range watches { // after mu: each waits for a drain under way
			w.close()
		}
	}()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.byRun { // every root, one whose number was reused too
		if r.fd >= 0 {
			r.fd.close()
		}
	}
	for _, p := range t.cache {
		p.fd.close()
	}
	for _, ps := range t.jobs {
		for _, p := range ps {
			p.fd.close()
		}
	}
	for _, j := range t.left {
		j.fd.close()
	}
	for _, w := range t.records {
		watches = append(watches, w)
	}
	clear(t.records)
	t.roots, t.cache, t.jobs, t.left = map[int]*root{}, map[int]*proc{}, map[string][]*jobProc{}, map[int]leftJob{}
	t.active.Store(0)
	return err
}

func (t *Tracker) flusher() {
	defer close(t.done)
	tk := time.NewTicker(t.opts.FlushEvery)
	defer tk.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tk.C:
			if err := t.flush(); err != nil {
				t.opts.Logger.Error("lineage: recording inputs", "err", err)
			}
			t.reap()
		}
	}
}

// Changed takes the keys of a catalog change notification (the mount
// daemon's PostgreSQL listener, in commit order, caught up after a lost
// connection): the runs another daemon of the catalog started
// (catalog.RunStartChange) are registered, those of this host, as at the
// daemon's start (Resume), on the tracker's own goroutine (watch). `lamina
// run` registers its run with the daemon of the instance it works with;
// another daemon of the catalog on this host (another instance's mount of
// a shared PostgreSQL catalog, already up) knew nothing of it, and what
// the run did through its mount was nobody's. nil (notifications may have
// been lost) makes it look at every run once. It does not block.
func (t *Tracker) Changed(keys []string) {
	t.mu.Lock()
	n := len(t.started)
	if keys == nil {
		t.rescan = true
	}
	for _, k := range keys {
		if uid, ok := catalog.StartedRun(k); ok {
			t.started[uid] = true
		}
	}
	wake := keys == nil || len(t.started) > n
	t.mu.Unlock()
	if wake {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// watch registers the runs Changed hands it, until the tracker closes.
func (t *Tracker) watch() {
	defer t.watching.Done()
	failed := 0
	var retry <-chan time.Time
	for {
		select {
		case <-t.stop:
			return
		case <-t.wake:
		case <-retry:
		}
		retry = nil
		if err := t.discover(); err != nil {
			// A catalog that is away: said once, then every 100th try;
			// what was not read is read at the next try.
			if failed++; failed%100 == 1 {
				t.opts.Logger.Warn("lineage: reading runs begun through another daemon", "err", err, "tries", failed)
			}
			retry = time.After(time.Second)
			continue
		}
		failed = 0
	}
}

// discover resumes the runs Changed queued (watch); those it could not
// read stay queued.
func (t *Tracker) discover() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.mu.Lock()
	for uid, at := range t.gone {
		if time.Since(at) > time.Minute { // its end is written by now
			delete(t.gone, uid)
		}
	}
	var uids []string
	for uid := range t.started {
		if _, known := t.byRun[uid]; !known && t.gone[uid].IsZero() {
			uids = append(uids, uid)
		}
	}
	clear(t.started)
	rescan := t.rescan
	t.rescan = false
	t.mu.Unlock()
	var runs []catalog.Run
	var errs []error
	if rescan {
		rs, err := t.cat.ListRuns(ctx, catalog.RunQuery{})
		if err != nil {
			errs = append(errs, err)
			t.mu.Lock()
			t.rescan = true
			t.mu.Unlock()
		}
		runs = rs
	}
	for _, uid := range uids {
		rec, err := t.cat.RunRecord(ctx, uid)
		switch {
		case errors.Is(err, catalog.ErrNotFound): // not ours to wait for
		case err != nil:
			errs = append(errs, err)
			t.mu.Lock()
			t.started[uid] = true
			if ch := t.looking[uid]; ch != nil {
				if len(t.unreadable) >= 4096 {
					clear(t.unreadable)
				}
				t.unreadable[uid] = time.Now()
				close(ch)
				delete(t.looking, uid)
			}
			t.mu.Unlock()
		default:
			runs = append(runs, rec.Run)
		}
	}
	got := t.Resume(ctx, runs)
	if len(got) > 0 {
		t.opts.Logger.Info("lineage: runs begun through another daemon tracked", "runs", got)
	}
	// The opens waiting for a run a marker names (lookUp) go on: the run
	// is registered, or names nothing to register here (not looked up
	// again); one whose record could not be read stays queued and its
	// opens wait on until their deadline.
	t.mu.Lock()
	for uid, ch := range t.looking {
		if t.started[uid] { // queued since, or to be read again
			continue
		}
		if _, ok := t.byRun[uid]; !ok {
			if len(t.missed) >= 4096 {
				clear(t.missed)
			}
			t.missed[uid] = true
		}
		close(ch)
		delete(t.looking, uid)
	}
	t.mu.Unlock()
	return errors.Join(errs...)
}

// flush writes the queued inputs. A batch the catalog refuses or that
// times out goes back in the queue for the next flush (it was lost:
// a catalog away for a moment dropped the inputs of every run with
// inputs queued), except a run the catalog says does not exist
// (ErrNotFound): nothing will ever record them.
func (t *Tracker) flush() error {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	t.mu.Lock()
	p := t.pending
	t.pending = map[string][]string{}
	t.mu.Unlock()
	var errs []error
	for run, uids := range p {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := t.cat.AddInputs(ctx, run, uids)
		cancel()
		if t.wrote(run, uids, err) {
			errs = append(errs, fmt.Errorf("run %s: %w", run, err))
		}
	}
	return errors.Join(errs...)
}

// wrote settles a write of run's inputs uids that ended with err: on a
// failure they are queued again, unless the run does not exist or the role
// may not write, and the failure is reported (true: the caller logs or returns err) once until
// a write for run succeeds.
func (t *Tracker) wrote(run string, uids []string, err error) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		delete(t.failing, run)
		return false
	}
	if errors.Is(err, catalog.ErrNotFound) || errors.Is(err, iofs.ErrPermission) {
		// The run is gone, or this role may not write (a read-only
		// PostgreSQL role: postgres.ErrReadOnly): a retry would be
		// refused on every tick, for good.
		delete(t.failing, run)
		return true
	}
	t.pending[run] = append(uids, t.pending[run]...)
	if t.failing[run] {
		return false
	}
	t.failing[run] = true
	return true
}

// handlerWrite bounds how long Used waits for the catalog, inside a FUSE
// handler, to write an input of a run another daemon registered (tests
// shorten it).
var handlerWrite = 2 * time.Second

// writeNow writes uid, queued (use) as an input of run, from a FUSE
// handler: only that input, beside any flush, for handlerWrite at most.
// A write that fails or is not done by then leaves it queued for the
// background flush; while one is still stuck (the catalog hangs), the
// next handlers do not try (nowSem): they only queue.
func (t *Tracker) writeNow(run, uid string) {
	select {
	case t.nowSem <- struct{}{}:
	default:
		return // earlier writes are stuck: the flusher will write it
	}
	t.mu.Lock()
	q := t.pending[run]
	i := slices.Index(q, uid)
	if i < 0 { // a flush took it meanwhile
		t.mu.Unlock()
		<-t.nowSem
		return
	}
	if q = slices.Delete(q, i, i+1); len(q) == 0 {
		delete(t.pending, run)
	} else {
		t.pending[run] = q
	}
	t.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer func() { <-t.nowSem }()
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := t.cat.AddInputs(ctx, run, []string{uid})
		cancel()
		if t.wrote(run, []string{uid}, err) {
			t.opts.Logger.Error("lineage: recording inputs", "run", run, "err", err)
		}
	}()
	tm := time.NewTimer(handlerWrite)
	defer tm.Stop()
	select {
	case <-done:
	case <-tm.C:
	}
}

// Wrap returns cat with StartRun and FinishRun passed on to t: the daemon
// serves the wrapped catalog on its socket, so that `lamina run`
// registers its processes by starting a run.
func (t *Tracker) Wrap(cat catalog.Catalog) catalog.Catalog { return &tracked{Catalog: cat, t: t} }

type tracked struct {
	catalog.Catalog
	t *Tracker
}

func (c *tracked) StartRun(ctx context.Context, r catalog.Run) (catalog.Run, error) {
	var fd pidfd = -1
	if r.RootPID > 0 {
		// Outside any FUSE handler: /proc/PID/stat is safe here.
		start, err := ProcStart(r.RootPID)
		if err != nil || start != r.RootStart {
			return catalog.Run{}, fmt.Errorf("lineage: process %d (started at tick %d) is not running here: %w", r.RootPID, r.RootStart, catalog.ErrNotFound)
		}
		var ok bool
		if fd, ok = openPidfd(r.RootPID); !ok {
			return catalog.Run{}, fmt.Errorf("lineage: process %d exited: %w", r.RootPID, catalog.ErrNotFound)
		}
		// This daemon watches the root: another one that tracks the run
		// too leaves to it the judgment that the run was abandoned (reap).
		r.Daemon = c.t.daemon
		if r.HostID == "" { // a client that records none
			r.HostID = hostID()
		}
	}
	redirects := r.Redirects
	r.Redirects = nil
	got, err := c.Catalog.StartRun(ctx, r)
	if err != nil {
		if fd >= 0 {
			fd.close()
		}
		return got, err
	}
	var src source
	if rec, err := c.Catalog.RunRecord(ctx, got.UID); err == nil {
		src = sourceOf(rec.Transform)
	}
	c.t.register(got, fd, src, false)
	if len(redirects) > 0 {
		c.t.adoptRedirects(got, redirects)
	}
	return got, nil
}

// Save passes the reruns of a tracked run's save (`lamina save` of
// identical bytes) to the tracker (Reproduced).
func (c *tracked) Save(ctx context.Context, vs []catalog.NewVersion) ([]catalog.Saved, error) {
	saved, err := c.Catalog.Save(ctx, vs)
	if err == nil && len(saved) == len(vs) {
		for i, s := range saved {
			if s.Unchanged {
				c.t.Reproduced(vs[i].Run, s.Version)
			}
		}
	}
	return saved, err
}

func (c *tracked) FinishRun(ctx context.Context, uid string, e catalog.RunEnd) (catalog.Run, error) {
	// A job's end is when its parent ends, unless learnt better (lamina
	// run amends them from Snakemake's records: rule, status, times).
	// Ok only if the pipeline ended well; a job of a pipeline that failed
	// or was killed may have been cut off, and lamina run makes ok the
	// ones Snakemake recorded done.
	failed := e.Abandoned || e.Signal != "" || e.ExitCode != nil && *e.ExitCode != 0
	return c.t.finish(ctx, uid, e, catalog.RunEnd{FinishedAt: time.Now(), Abandoned: failed})
}

// finish forgets run uid, writes its queued inputs, ends its jobs' runs
// with jobEnd (abandoned, whatever jobEnd says, for a job whose process
// is still running: the pipeline that would judge it is gone) and the run
// with e.
func (t *Tracker) finish(ctx context.Context, uid string, e, jobEnd catalog.RunEnd) (catalog.Run, error) {
	jobs, left := t.unregister(uid, true)
	// Recorded, so that a daemon that starts while they still run knows
	// the run lingers (Resume).
	e.ProcsLeft = e.ProcsLeft || left
	if err := t.flush(); err != nil {
		// Logged, not returned: the run's end matters more than a lost batch.
		t.opts.Logger.Error("lineage: recording inputs", "err", err)
	}
	for _, j := range jobs {
		end := jobEnd
		if j.alive {
			end.Abandoned = true
		}
		if _, err := t.cat.FinishRun(ctx, j.run, end); err != nil {
			return catalog.Run{}, err
		}
	}
	return t.cat.FinishRun(ctx, uid, e)
}

// reap ends, as abandoned, the registered runs whose root process exited
// without finishing them (a `lamina run` killed with SIGKILL, a tracked
// shell closed without `track finish`): one poll per live run. A run
// whose daemon (catalog.Run.Daemon) is another one that still runs is
// that daemon's to judge (leftToOwner).
func (t *Tracker) reap() {
	t.mu.Lock()
	var dead []string
	var lingering []*root
	for uid, rt := range t.byRun {
		switch {
		case rt.lingering:
			lingering = append(lingering, rt)
		case rt.fd >= 0 && !rt.fd.alive():
			dead = append(dead, uid)
		}
	}
	t.mu.Unlock()
	for _, rt := range lingering {
		if !cgroupBusy(rt.run.Cgroup) { // the last process it left exited
			t.unregister(rt.run.UID, false)
		}
	}
	for _, uid := range dead {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if t.leftToOwner(ctx, uid) {
			cancel()
			continue
		}
		end := catalog.RunEnd{FinishedAt: time.Now(), Abandoned: true}
		if r, err := t.finish(ctx, uid, end, end); errors.Is(err, iofs.ErrPermission) {
			// A daemon whose catalog role may only read (postgres.ErrReadOnly)
			// cannot end it; one that may write does (its own run, or at its
			// next start): no error per run another daemon of this host began.
			t.opts.Logger.Debug("lineage: a run whose process is gone is left to a daemon that may write the catalog", "run", uid, "err", err)
		} else if err != nil {
			t.opts.Logger.Error("lineage: ending a run whose process is gone", "run", uid, "err", err)
		} else if r.Status != catalog.RunAbandoned { // it ended meanwhile: its end stays (catalog.Run.Apply)
			t.opts.Logger.Info("lineage: run ended: its process exited after finishing it", "run", uid, "status", r.Status)
		} else {
			t.opts.Logger.Info("lineage: run abandoned: its process exited without finishing it", "run", uid)
		}
		cancel()
	}
}

// Resume registers again, at the daemon's start, the runs among runs that
// are running on this host with their root process alive: a run that
// began while no daemon was up (without one, or across a restart) is
// known only to the catalog, and would otherwise get nothing of what it
// reads and writes through the mount from now on. Each is registered as
// `lamina run` registers it over the socket (Wrap's StartRun): its root
// held as a pidfd checked against the root's start time, its cgroup, its
// transform's source. A run another daemon that still runs tracks too
// (another instance on the same PostgreSQL catalog, whose mount the run
// may use as well) is registered all the same, so that what it does
// through this mount is credited, and that daemon judges it (reap). The
// job runs an earlier daemon started for a Snakemake run and left running
// end with that run, and every child run's parent is known (a version a child wrote is no input of its parent).
// A run of this host that ended with processes left in its cgroup
// (ProcsLeft) whose cgroup still holds some is registered as lingering
// (resumeLingering). It returns the runs registered. It reads /proc:
// never call it inside a FUSE handler.
func (t *Tracker) Resume(ctx context.Context, runs []catalog.Run) []string {
	t.resumeMu.Lock()
	defer t.resumeMu.Unlock()
	host, _ := os.Hostname()
	t.mu.Lock()
	t.ended = map[string]bool{}
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.ended = nil
		t.mu.Unlock()
	}()
	var done []string
	claimed := map[string]bool{} // cgroups of the runs seen: runs come newest first
	for _, r := range runs {
		// A cgroup's name may come back once it is gone (lamina-run-PID):
		// the newest run that had it owns it.
		owner := r.Cgroup != "" && !claimed[r.Cgroup]
		claimed[r.Cgroup] = true
		if owner && r.Status != catalog.RunRunning && r.ProcsLeft && Here(r, host) && cgroupBusy(r.Cgroup) {
			if t.resumeLingering(ctx, r) {
				done = append(done, r.UID)
			}
			continue
		}
		if r.Status != catalog.RunRunning || r.RootPID <= 0 || !Here(r, host) {
			continue
		}
		select {
		case <-t.stop: // the daemon is stopping
			return done
		default:
		}
		if t.resume(ctx, r) {
			done = append(done, r.UID)
		}
	}
	return done
}

// resume registers running run r again (Resume) and reports whether it
// did: not when it is registered already, its root is gone or it ended.
func (t *Tracker) resume(ctx context.Context, r catalog.Run) bool {
	t.mu.Lock()
	_, known := t.byRun[r.UID]
	known = known || !t.gone[r.UID].IsZero() // ended here, its end not written yet
	t.mu.Unlock()
	if known {
		return false
	}
	// The pidfd first, then the start time: a number reused after
	// the check would otherwise be held in the root's place.
	fd, ok := openPidfd(r.RootPID)
	if !ok {
		return false
	}
	rec, err := t.cat.RunRecord(ctx, r.UID)
	if start, serr := ProcStart(r.RootPID); serr != nil || start != r.RootStart || err != nil || rec.Run.Status != catalog.RunRunning {
		fd.close()
		return false
	}
	src := sourceOf(rec.Transform)
	kids, _ := t.cat.ListRuns(ctx, catalog.RunQuery{Parent: r.UID})
	t.mu.Lock()
	if t.ended[r.UID] { // finished since its record was read
		t.mu.Unlock()
		fd.close()
		return false
	}
	for _, k := range kids {
		t.parents[k.UID] = r.UID
		if r.Split && k.Status == catalog.RunRunning && k.RootPID == 0 {
			t.adopted[r.UID] = append(t.adopted[r.UID], k.UID)
		}
	}
	t.mu.Unlock()
	t.register(rec.Run, fd, src, false)
	// Claimed when the daemon that had it is gone (as read just now), so
	// that the daemons that track it too leave the judgment to this one
	// (reap).
	if d := rec.Run.Daemon; d != t.daemon && (d == "" || !DaemonAlive(d)) {
		if _, err := t.cat.FinishRun(ctx, r.UID, catalog.RunEnd{Daemon: t.daemon}); err != nil {
			t.opts.Logger.Warn("lineage: claiming a resumed run", "run", r.UID, "err", err)
		}
	}
	return true
}

// leftToOwner reports whether reap leaves run uid, whose root exited, to
// the daemon that registered or claimed it: another one that still runs,
// for ownerGrace, while the run is running. That daemon, or `lamina run`
// a moment after, records how it ended. A run whose end is
// recorded is ended here at once (its inputs written, its end kept:
// catalog.Run.Apply), and so is one whose daemon is gone or gives no
// end in time.
func (t *Tracker) leftToOwner(ctx context.Context, uid string) bool {
	rec, err := t.cat.RunRecord(ctx, uid)
	if err != nil || rec.Run.Status != catalog.RunRunning {
		return false
	}
	if d := rec.Run.Daemon; d == "" || d == t.daemon || !DaemonAlive(d) {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	rt := t.byRun[uid]
	if rt == nil {
		return false
	}
	if rt.exited.IsZero() {
		rt.exited = time.Now()
	}
	return time.Since(rt.exited) < ownerGrace
}

// resumeLingering registers again run r, which ended while processes
// were left in its cgroup (ProcsLeft) and which still holds some: they
// work for it until it empties, as they did for the daemon that saw the
// run end. The job processes a killed Snakemake left work for their jobs'
// runs again where their command lines tell which (resumeLeftJobs).
func (t *Tracker) resumeLingering(ctx context.Context, r catalog.Run) bool {
	t.mu.Lock()
	_, known := t.byRun[r.UID]
	known = known || !t.gone[r.UID].IsZero() // ended here, its end not written yet
	t.mu.Unlock()
	if known {
		return false
	}
	rec, err := t.cat.RunRecord(ctx, r.UID)
	if err != nil {
		return false
	}
	kids, _ := t.cat.ListRuns(ctx, catalog.RunQuery{Parent: r.UID})
	t.mu.Lock()
	for _, k := range kids {
		t.parents[k.UID] = r.UID
	}
	t.mu.Unlock()
	t.register(rec.Run, -1, sourceOf(rec.Transform), true)
	if r.Split {
		t.resumeLeftJobs(r, kids)
	}
	return true
}

// resumeLeftJobs finds the job processes Snakemake left in the cgroup of
// its lingering run r when it was killed, which only the daemon that saw
// it end knew by pid (Tracker.left): each process at the top of a tree in
// the cgroup (its parent, Snakemake, is gone) whose command line is that
// of exactly one of r's abandoned job runs (kids) works for that run again,
// and so does what it starts. One whose command line is no job's, or
// several jobs', stays the pipeline's run's. It reads /proc: never call it
// inside a FUSE handler.
func (t *Tracker) resumeLeftJobs(r catalog.Run, kids []catalog.Run) {
	var jobs []catalog.Run
	for _, k := range kids {
		if k.RootPID == 0 && k.Status == catalog.RunAbandoned && len(k.Argv) > 0 {
			jobs = append(jobs, k)
		}
	}
	for _, pid := range cgroupProcs(r.Cgroup) {
		_, ppid, err := procStatus(pid)
		if err != nil || inCgroup(ppid, r.Cgroup) {
			continue
		}
		job, ok := onlyJobOf(jobs, procCmdline(pid))
		if !ok {
			continue
		}
		fd, ok := openPidfd(pid)
		if !ok {
			continue
		}
		t.mu.Lock()
		if old, ok := t.left[pid]; ok {
			old.fd.close()
		}
		t.left[pid] = leftJob{proc: proc{run: job, fd: fd}, owner: r.UID}
		t.resetCache()
		t.mu.Unlock()
	}
}

// onlyJobOf returns the one run among jobs whose command line is argv's.
func onlyJobOf(jobs []catalog.Run, argv []string) (string, bool) {
	found := ""
	for _, j := range jobs {
		if sameJobCommand(j.Args(), argv) {
			if found != "" {
				return "", false
			}
			found = j.UID
		}
	}
	return found, found != "" && len(argv) > 0
}

// source is a run's transform's source file: its digest and the paths
// it was run by (as given, and with symbolic links resolved).
type source struct {
	digest string
	paths  []string
}

// sourceOf returns t's source; the zero source for a transform without one.
// It may stat through the mount: never call it inside a FUSE handler.
func sourceOf(t catalog.Transform) source {
	if t.Digest.IsZero() {
		return source{}
	}
	s := source{digest: t.Digest.String()}
	if t.Path != "" {
		s.paths = append(s.paths, filepath.ToSlash(t.Path))
		if p, err := filepath.EvalSymlinks(t.Path); err == nil && p != t.Path {
			s.paths = append(s.paths, filepath.ToSlash(p))
		}
	}
	return s
}

// is reports whether v is the source file itself: the same bytes under
// the key the source was run by (its path ends with the key). Another
// key with the same bytes (a copy of the script) is data.
func (s source) is(v catalog.Version) bool {
	if s.digest == "" || s.digest != v.Digest.String() {
		return false
	}
	for _, p := range s.paths {
		if strings.HasSuffix(p, "/"+v.Key) {
			return true
		}
	}
	return false
}

// register makes run r known by its root process fd and its cgroup;
// lingering, by its cgroup only (see root).
func (t *Tracker) register(r catalog.Run, fd pidfd, src source, lingering bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.parents[r.UID] = r.Parent
	if src.digest != "" {
		t.sources[r.UID] = src
	}
	if fd < 0 && r.Cgroup == "" {
		return
	}
	if _, ok := t.byRun[r.UID]; ok { // registered meanwhile (watch, and the socket)
		if fd >= 0 {
			fd.close()
		}
		return
	}
	rt := &root{run: r, fd: fd, lingering: lingering}
	if fd >= 0 {
		// A root of this number that exited (reused since) stays known by
		// its run, with its pidfd, until the tick ends that run: closing
		// it here made it poll as alive for ever.
		t.roots[r.RootPID] = rt
	}
	t.byRun[r.UID] = rt
	t.active.Store(int32(len(t.byRun)))
	t.resetCache()
}

// leftJob is a job process its Snakemake run left running (Tracker.left).
type leftJob struct {
	proc
	owner string // the lingering split run
}

// jobLeft is a job's run left by a run that ends, and whether the job's
// process was still running then.
type jobLeft struct {
	run   string
	alive bool
}

// unregister forgets run uid and returns its jobs' runs. With linger, a
// run whose cgroup still holds processes stays known by its cgroup (and
// its processes' marker) until the cgroup empties: what they read and
// write is the run's, recorded after its end; lingers says it does.
func (t *Tracker) unregister(uid string, linger bool) (jobs []jobLeft, lingers bool) {
	var busy bool
	if linger {
		t.mu.Lock()
		rt := t.byRun[uid]
		t.mu.Unlock()
		// Outside mu: these are file reads. A run whose root is in its
		// cgroup (a shell of `track start`) ends with its finish: its
		// shell and what it starts work for nobody after.
		busy = rt != nil && !rt.lingering && cgroupBusy(rt.run.Cgroup) && !inCgroup(rt.run.RootPID, rt.run.Cgroup)
	}
	var closing *recordWatch
	defer func() {
		if closing != nil {
			closing.close()
		}
	}()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended != nil {
		t.ended[uid] = true
	}
	if !busy {
		t.gone[uid] = time.Now()
	}
	if a, ok := t.adopted[uid]; ok {
		for _, j := range a {
			jobs = append(jobs, jobLeft{run: j})
		}
		delete(t.adopted, uid)
	}
	if rt := t.byRun[uid]; rt != nil {
		if t.roots[rt.run.RootPID] == rt {
			delete(t.roots, rt.run.RootPID)
		}
		if rt.fd >= 0 {
			rt.fd.close()
			rt.fd = -1
		}
		if busy {
			rt.lingering = true
		} else {
			delete(t.byRun, uid)
			t.forgetLocked(uid)
		}
		for _, j := range t.jobs[uid] {
			alive := j.fd.alive()
			jobs = append(jobs, jobLeft{run: j.run, alive: alive})
			if busy && alive {
				if old, ok := t.left[j.pid]; ok {
					old.fd.close()
				}
				t.left[j.pid] = leftJob{proc: j.proc, owner: uid}
				continue
			}
			t.forgetLocked(j.run)
			j.fd.close()
		}
		delete(t.jobs, uid)
		delete(t.outputs, uid)
		if w := t.records[uid]; w != nil {
			closing = w // after mu: it waits for a drain under way
			delete(t.records, uid)
		}
		if !busy {
			for pid, j := range t.left {
				if j.owner == uid {
					t.forgetLocked(j.run)
					j.fd.close()
					delete(t.left, pid)
				}
			}
		}
		t.active.Store(int32(len(t.byRun)))
		t.resetCache()
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].run < jobs[b].run })
	return slices.CompactFunc(jobs, func(a, b jobLeft) bool { return a.run == b.run }), busy
}

// forgetLocked drops what use remembers of run; called with mu held.
func (t *Tracker) forgetLocked(run string) {
	delete(t.recorded, run)
	delete(t.reran, run)
}

// resetCache drops every cached answer; called with mu held.
func (t *Tracker) resetCache() {
	for _, p := range t.cache {
		p.fd.close()
	}
	clear(t.cache)
	t.gen++
}

// Within reports whether run is ancestor or a run under it (a job of a
// Snakemake pipeline under the pipeline's run), while ancestor runs: it,
// or the root run it is under, is tracked here and has not ended. The
// mount's Stage asks it of a key ancestor unlinked that run writes again
// (stage.Stage.OnRunWithin).
func (t *Tracker) Within(run, ancestor string) bool {
	if run == "" || ancestor == "" {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.gone[ancestor].IsZero() {
		return false
	}
	running := false
	for r, i := ancestor, 0; r != "" && i < 64; r, i = t.parents[r], i+1 {
		if t.byRun[r] != nil && t.gone[r].IsZero() {
			running = true
			break
		}
	}
	for i := 0; running && run != "" && i < 64; run, i = t.parents[run], i+1 {
		if run == ancestor {
			return true
		}
	}
	return false
}

// Caller returns the run the thread tid works for, or "". With no run
// registered it returns at once, unless the catalog is Shared (a process
// may work for a run this tracker has not heard of yet: lookUp).
func (t *Tracker) Caller(tid uint32) string {
	if (t.active.Load() == 0 && !t.opts.Shared) || tid == 0 {
		return ""
	}
	id := int(tid)
	t.mu.Lock()
	if p := t.cache[id]; p != nil {
		if p.fd.alive() {
			t.mu.Unlock()
			return p.run
		}
		p.fd.close()
		delete(t.cache, id)
	}
	gen := t.gen
	t.mu.Unlock()
	// The pidfd is taken before resolving: if the thread is gone by the
	// next call, its number may name another process and is resolved anew.
	fd, ok := openPidfd(id)
	run, sure := t.resolve(id)
	if !ok {
		return run
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// An answer /proc could not give (a read that timed out or failed) or
	// given before a registration is asked again at the next call: kept,
	// it was the thread's answer for as long as it lived.
	if !sure || t.gen != gen {
		fd.close()
		return run
	}
	if len(t.cache) >= t.opts.MaxCached {
		t.resetCache()
	}
	if old := t.cache[id]; old != nil {
		old.fd.close()
	}
	t.cache[id] = &proc{run: run, fd: fd}
	return run
}

// resolve finds tid's run: its cgroup, else its parent chain up to a live
// registered root, else its environment marker of a registered run. sure
// is false when a read of /proc it needed failed or timed out: the answer
// may be wrong, and is not to be kept.
func (t *Tracker) resolve(tid int) (run string, sure bool) {
	sure = true
	if b, err := t.readProc(tid, "cgroup"); err != nil {
		sure = false
	} else if cg := parseCgroup(b); cg != "" {
		t.mu.Lock()
		var best *root
		for _, rt := range t.byRun {
			if c := rt.run.Cgroup; c != "" && (cg == c || strings.HasPrefix(cg, c+"/")) && (best == nil || len(c) > len(best.run.Cgroup)) {
				best = rt
			}
		}
		t.mu.Unlock()
		if best != nil && !best.run.Split {
			return best.run.UID, true
		}
	}
	status := func(pid int) (tgid, ppid int, err error) {
		b, err := t.readProc(pid, "status")
		if err != nil {
			return 0, 0, err
		}
		return parseStatus(pid, b)
	}
	t.mu.Lock()
	walk := len(t.roots) > 0 || len(t.left) > 0
	t.mu.Unlock()
	tgid, _, err := status(tid)
	if err != nil {
		return "", false
	}
	chain := []int{tgid}
	for pid := tgid; walk && pid > 1 && len(chain) < 128; {
		t.mu.Lock()
		rt := t.roots[pid]
		lj, isLeft := t.left[pid]
		t.mu.Unlock()
		if isLeft && lj.fd.alive() {
			return lj.run, sure // a job its killed Snakemake left running
		}
		if rt != nil && rt.fd.alive() {
			// chain ends … job, command, root: the command (snakemake)
			// is the run itself, each child of it a job.
			if !rt.run.Split || len(chain) < 3 {
				return rt.run.UID, sure
			}
			return t.job(rt, chain[len(chain)-3], chain[len(chain)-2]), sure
		}
		_, ppid, err := status(pid)
		if err != nil {
			sure = false // an ancestor exited mid-walk: the chain is another now
			break
		}
		pid = ppid
		chain = append(chain, pid)
	}
	m, read := envMarker(t.readProc, tid, t.opts.EnvDeadline)
	if !read {
		return "", false
	}
	if m != "" {
		t.mu.Lock()
		_, ok := t.byRun[m]
		t.mu.Unlock()
		if ok {
			return m, true
		}
		if t.lookUp(m) {
			// Known now: resolved as any process of a known run (a
			// Snakemake job's is its job's run, not the pipeline's).
			return t.resolve(tid)
		}
	}
	return "", sure
}

// lookUp looks up run uid, which a caller's marker names and this
// tracker does not know, and reports whether it is registered now. Only
// on a shared catalog: the run may be registered with another daemon,
// whose start's notification has not reached this one yet (a `lamina run`
// through mount B reading at once through mount A lost the read half the
// time). The lookup is watch's (Resume reads /proc and the catalog,
// never inside a handler): the open waits for it, up to MissWait. A
// marker that names no run to register here is looked up once.
func (t *Tracker) lookUp(uid string) bool {
	if !t.opts.Shared || len(uid) != ref.StemLen || !ref.IsUIDPrefix(uid) {
		return false
	}
	t.mu.Lock()
	if t.missed[uid] || !t.gone[uid].IsZero() || time.Since(t.unreadable[uid]) < unreadableFor {
		t.mu.Unlock()
		return false
	}
	ch := t.looking[uid]
	if ch == nil {
		ch = make(chan struct{})
		t.looking[uid] = ch
		t.started[uid] = true
	}
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
	tm := time.NewTimer(t.opts.MissWait)
	defer tm.Stop()
	select {
	case <-ch:
	case <-tm.C:
	case <-t.stop:
	}
	t.mu.Lock()
	_, ok := t.byRun[uid]
	t.mu.Unlock()
	return ok
}

// unreadableFor is how long a marker whose run could not be read is not
// waited for again.
const unreadableFor = 30 * time.Second

// job returns the child run of the split run rt for the job process pid
// of the Snakemake process snakemake, starting one on first sight.
func (t *Tracker) job(rt *root, pid, snakemake int) string {
	split := rt.run.UID
	t.jobMu.Lock()
	defer t.jobMu.Unlock()
	t.mu.Lock()
	j := t.jobByPid(split, pid)
	t.mu.Unlock()
	if j != nil && j.fd.alive() {
		return j.run
	}
	fd, ok := openPidfd(pid)
	if !ok {
		return split
	}
	argv := procCmdline(pid)
	script := t.scriptOf(pid, argv)
	// The job's own folder: Snakemake's working directory (-d), not the
	// folder the pipeline was started in. A readlink of /proc reads no
	// file of the mount.
	cwd := rt.run.Cwd
	if c, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd"); err == nil {
		cwd = c
	}
	t.readRecords(split, snakemake, rt.run.StartedAt)
	// A job's process that exited with the same command line as this one
	// was a pass of the same job: Snakemake runs a `benchmark: repeat(…,
	// N)` job's shell N times, one process after the other. Its records
	// name one job, so the passes share a run.
	t.mu.Lock()
	if p := t.passOf(split, argv, script); p != nil {
		t.jobs[split] = append(slices.DeleteFunc(t.jobs[split], func(q *jobProc) bool { return q == p }), &jobProc{proc: proc{run: p.run, fd: fd, argv: argv}, pid: pid, script: script})
		p.fd.close()
		t.mu.Unlock()
		return p.run
	}
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Keyed by the job's process, as every daemon of this host that sees
	// it knows it: another daemon that tracks the pipeline too (the job
	// reads through both mounts) started it, or will find this one
	// (catalog.Run.Job). Not by its command line: bash execs the last
	// command of its `-c` text, and the job's argv changes under it. Nor
	// by its pid: a daemon in another pid namespace of this host (a
	// container's) knows the job by another number; the pidfs inode is
	// one for them all, never reused until reboot.
	job := jobKey(fd.id())
	r, err := t.cat.StartRun(ctx, catalog.Run{Transform: rt.run.Transform, Parent: split, Name: "job",
		Argv: argv, Source: rt.run.Source, Cwd: cwd, User: rt.run.User, Host: rt.run.Host, HostID: hostID(), Daemon: t.daemon, Job: job})
	if err != nil {
		fd.close()
		t.opts.Logger.Error("lineage: starting a job's run", "run", split, "pid", pid, "err", err)
		return split
	}
	t.mu.Lock()
	// A job that exited before with this number keeps its place: its run
	// ends with the pipeline's.
	t.jobs[split] = append(t.jobs[split], &jobProc{proc: proc{run: r.UID, fd: fd, argv: argv}, pid: pid, script: script})
	t.parents[r.UID] = split
	if s, ok := t.sources[split]; ok {
		t.sources[r.UID] = s
	}
	t.mu.Unlock()
	return r.UID
}

// jobKey is catalog.Run.Job for a job process whose pidfs inode is id:
// "" without pidfs (id 0).
func jobKey(id uint64) string {
	if id == 0 {
		return ""
	}
	return fmt.Sprintf("pidfs %d", id)
}

// jobByPid returns the newest process of split's jobs numbered pid, nil if
// none; called with mu held.
func (t *Tracker) jobByPid(split string, pid int) *jobProc {
	ps := t.jobs[split]
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].pid == pid {
			return ps[i]
		}
	}
	return nil
}

// passOf returns the exited job process of split whose command line is
// argv's (sameJobCommand) and whose job Snakemake has not recorded done,
// nil if none; called with mu held. For a `script:` job (argv runs a copy
// of its script) its copy must say the same job too (script, scriptJob):
// the command lines of all the jobs of a `script:` rule are the same but
// for the copy's temporary name, new for each pass as for each job, and
// with -j above 1 a job often starts between another's exit and
// Snakemake's record of it (27 runs for 30 jobs, each of some with the
// input of two). A copy that could not be read is no pass.
func (t *Tracker) passOf(split string, argv []string, script string) *jobProc {
	if len(argv) == 0 {
		return nil
	}
	isScript := scriptCopy(argv) != ""
	for _, p := range t.jobs[split] {
		if isScript && (script == "" || p.script != script) {
			continue
		}
		if !p.recorded && sameJobCommand(p.argv, argv) && !p.fd.alive() {
			return p
		}
	}
	return nil
}

// Wrote notes that run opened key (a mount-relative path) to write it.
// Only a Snakemake job's writes are kept, until its pipeline ends: the
// record Snakemake writes of each of a job's outputs once the job is done
// names the job (ScratchRenamed). It does not block.
func (t *Tracker) Wrote(run, key string) {
	if t.active.Load() == 0 || run == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	split := t.parents[run]
	if len(t.jobs[split]) == 0 {
		return // not a job's run
	}
	outs := t.outputs[split]
	if outs == nil {
		outs = map[string]string{}
		t.outputs[split] = outs
	}
	outs[key] = run
}

// ScratchRenamed notes that a scratch file was renamed into place at p (a
// mount-relative path). Snakemake writes a job's records so: one in
// .snakemake/metadata for each output once the job is done, after its
// last process exited (all the passes of a `benchmark: repeat`; the
// attempts of a `retries:` job that failed write none). The job that
// wrote that output takes no more passes: a later job process with the
// same command line is another job (two rules, or two wildcards, whose
// shell commands are the same text), with its own run. It does not block.
func (t *Tracker) ScratchRenamed(p string) {
	if t.active.Load() == 0 {
		return
	}
	out, ok := snakemakeRecordOf(p)
	if !ok {
		return
	}
	// An absolute output (the Snakefile names it so) mapped to its key, or
	// dropped when outside the mount, before mu: it may lstat folders.
	outs := outputKeys([]string{out}, t.opts.Mountpoint, t.linkReader())
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, out := range outs {
		t.recordedOutput("", out)
	}
}

// readRecords takes in the records the Snakemake process snakemake of
// split wrote outside the mount since the last call (recordWatch), as
// ScratchRenamed does those it writes in the mount; split started at
// since. Called with jobMu held, before a job's pass is decided.
func (t *Tracker) readRecords(split string, snakemake int, since time.Time) {
	t.mu.Lock()
	w, ok := t.records[split]
	t.mu.Unlock()
	if !ok {
		if w = watchRecords(snakemake, t.opts.Mountpoint, since); w == nil {
			return
		}
		t.mu.Lock()
		_, live := t.byRun[split]
		if live {
			t.records[split] = w
		}
		t.mu.Unlock()
		if !live { // ended meanwhile
			w.close()
			return
		}
	}
	// Drained outside mu: after an overflow it lists every record (1.3 s
	// for 100,000), and each tracked open waits for mu. The watch's own
	// mutex keeps a finish from closing it meanwhile (unregister).
	outs := outputKeys(w.drain(t.opts.Mountpoint, t.opts.Logger), t.opts.Mountpoint, t.linkReader())
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, out := range outs {
		t.recordedOutput(split, out) // these records are this Snakemake's
	}
}

// recordedOutput closes to passes the job of split ("": of any split)
// that wrote out: a key, or an absolute path whose folder could not be
// resolved (outputKeys), matched by its tail; called with mu held.
func (t *Tracker) recordedOutput(split, out string) {
	for s, outs := range t.outputs {
		if split != "" && s != split {
			continue
		}
		run, ok := outs[out]
		if !ok && strings.HasPrefix(out, "/") {
			run, ok = bySuffix(outs, out)
		}
		if !ok {
			continue
		}
		for _, j := range t.jobs[s] {
			if j.run == run {
				j.recorded = true
			}
		}
	}
}

// bySuffix returns the run of the key in outs that the absolute path abs
// ends with, the longest such key: abs is an output whose folder could
// not be resolved (outputKeys: removed since, or unreadable), which may
// still be the mount reached by another path. A path resolved outside the
// mount never gets here: its tail may read like a key. It looks up each of
// abs's tails, not each key: a drain's records outside the mount are all
// absolute, and 100,000 of them against 2,000 keys held mu for 13 s.
func bySuffix(outs map[string]string, abs string) (string, bool) {
	for i := 0; i < len(abs)-1; i++ {
		if abs[i] != '/' {
			continue
		}
		if run, ok := outs[abs[i+1:]]; ok {
			return run, true
		}
	}
	return "", false
}

// Used records that run read version v, unless run or one of its child
// runs wrote v, or v is the source file of the run's transform (a script
// or Snakefile in the mount is code, not data; a copy of it under another
// key is data), or Snakemake reading its workflow (workflowReadLocked).
// It does not block on the catalog, but for a run another daemon
// registered (othersLocked), whose input it tries to write before it
// returns, for handlerWrite at most (writeNow).
func (t *Tracker) Used(run string, v catalog.Version) {
	if t.use(run, v) {
		// That daemon records the run's end when `lamina run` asks, and
		// `lamina run` counts its inputs then: queued here, they waited
		// for this one's next tick (`0 inputs` printed for a run that
		// read through this mount). The caller's open returns after this,
		// before the run can end. Only this input, for a moment at most:
		// a catalog that hangs must not hang the open (writeNow).
		t.writeNow(run, v.UID)
	}
}

// use queues v as an input of run (Used) and reports whether it must be
// written now.
func (t *Tracker) use(run string, v catalog.Version) bool {
	if run == "" || v.UID == "" {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sources[run].is(v) || t.workflowReadLocked(run, v) {
		return false
	}
	for w, i := v.Run, 0; w != "" && i < 64; w, i = t.parents[w], i+1 {
		if w == run {
			return false
		}
	}
	if t.reran[run][v.UID] {
		return false // it wrote these bytes again before this read
	}
	seen := t.recorded[run]
	if seen == nil {
		seen = map[string]bool{}
		t.recorded[run] = seen
	}
	if seen[v.UID] {
		return false
	}
	seen[v.UID] = true
	t.pending[run] = append(t.pending[run], v.UID)
	return t.othersLocked(run)
}

// Reproduced notes that run wrote the bytes of v, its key's latest
// version, again: the catalog made no version and recorded the run among
// v's (catalog.Runs.Reruns). From now on v is the output of run and of the
// runs it is under, and a read of it by them is no input (Used); a read
// before, already queued, stays one (`sort -o f f` read f, then wrote
// it). The commit path calls it once Save returned, before the close that
// committed returns. It does not block.
func (t *Tracker) Reproduced(run string, v catalog.Version) {
	if t.active.Load() == 0 || run == "" || run == v.Run || v.UID == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for w, i := run, 0; w != "" && i < 64; w, i = t.parents[w], i+1 {
		// Only runs tracked here (a job's by its pipeline's): forgotten
		// with them (unregister).
		if t.byRun[w] == nil && t.byRun[t.parents[w]] == nil {
			continue
		}
		vs := t.reran[w]
		if vs == nil {
			vs = map[string]bool{}
			t.reran[w] = vs
		}
		vs[v.UID] = true
	}
}

// othersLocked reports whether run, or the run it is a job of, was
// registered by another daemon (watch, Resume). Called with mu held.
func (t *Tracker) othersLocked(run string) bool {
	rt := t.byRun[run]
	if rt == nil {
		rt = t.byRun[t.parents[run]]
	}
	return rt != nil && rt.run.Daemon != "" && rt.run.Daemon != t.daemon
}

// SidecarLineage is the "lineage" field of a version's .meta sidecar.
type SidecarLineage struct {
	Run       string   `json:"run"`
	Status    string   `json:"status"`
	Transform string   `json:"transform"`
	TransUID  string   `json:"transform_uid"`
	Inputs    []string `json:"inputs"` // "key@vN uid"
	// AlsoBy: the newest of the runs that wrote the version's bytes again
	// after Run made it (catalog.Runs.Reruns), newest first, at most
	// SidecarReruns of them, "uid (name)"; AlsoCount: how many such runs
	// there are in all. Each identical rerun adds one: a rule run 50 times
	// named 50 runs, for good.
	AlsoBy    []string `json:"also_produced_by,omitempty"`
	AlsoCount int      `json:"also_produced_count,omitempty"`
}

// SidecarReruns is how many of the runs that reproduced a version its
// sidecar names (SidecarLineage.AlsoBy): the newest; `lamina lineage
// --up` shows every one.
const SidecarReruns = 5

// Sidecar returns what v's sidecar shows as its lineage, nil when v has no
// run.
func (t *Tracker) Sidecar(ctx context.Context, v catalog.Version) any {
	return SidecarOf(ctx, t.cat, v)
}

// SidecarOf returns the lineage field of v's sidecar read from src; nil
// when v was written by no run. It names the run that made v, but for a
// run that failed (or was abandoned) whose bytes a later run that ended ok
// wrote again (a Snakemake job that failed, its output trashed, then a
// rerun's identical write brought it back: docs/lineage.md): it names the
// newest such run, and the failed one among also_produced_by. The
// catalog keeps both as they are (the version's run made it).
func SidecarOf(ctx context.Context, src Source, v catalog.Version) any {
	if v.Run == "" {
		return nil
	}
	rec, err := src.RunRecord(ctx, v.Run)
	if err != nil {
		return SidecarLineage{Run: v.Run, Inputs: []string{}}
	}
	again, _ := src.Reruns(ctx, v.UID) // oldest first
	recs := map[string]catalog.RunRecord{v.Run: rec}
	record := func(r string) (catalog.RunRecord, bool) {
		rr, ok := recs[r]
		if !ok {
			var err error
			if rr, err = src.RunRecord(ctx, r); err != nil {
				return rr, false
			}
			recs[r] = rr
		}
		return rr, true
	}
	run, also := v.Run, again
	if st := rec.Run.Status; st == catalog.RunFailed || st == catalog.RunAbandoned {
		for i := len(again) - 1; i >= 0; i-- {
			if rr, ok := record(again[i]); ok && rr.Run.Status == catalog.RunOK {
				run, rec = again[i], rr
				// The failed run made the bytes first: the oldest.
				also = append(append([]string{v.Run}, again[:i]...), again[i+1:]...)
				break
			}
		}
	}
	// The transform's own name next to its uid: a Snakemake job's run
	// becomes a run of its rule's transform once named (lamina run).
	l := SidecarLineage{Run: run, Status: rec.Run.Status, Transform: rec.Transform.Name, TransUID: rec.Transform.UID, Inputs: []string{}}
	for _, u := range rec.Inputs {
		if iv, err := src.ByUID(ctx, u); err == nil {
			l.Inputs = append(l.Inputs, iv.Ref()+" "+u)
		}
	}
	l.AlsoCount = len(also)
	for i := len(also) - 1; i >= 0 && len(l.AlsoBy) < SidecarReruns; i-- {
		r := also[i]
		if rr, ok := record(r); ok {
			name := rr.Run.Name
			if name == "" {
				name = rr.Transform.Name
			}
			l.AlsoBy = append(l.AlsoBy, r+" ("+name+")")
		}
	}
	return l
}

// Self returns this process's pid and start time, for Run.RootPID and
// Run.RootStart.
func Self() (int, uint64, error) {
	pid := os.Getpid()
	st, err := ProcStart(pid)
	return pid, st, err
}
