package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogrpc"
	"github.com/lamina-bio/lamina/catalog/postgres"
	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/lineage"
	"github.com/lamina-bio/lamina/stage"
	"github.com/lamina-bio/lamina/storage/retry"
	"github.com/urfave/cli/v2"
)

// mountState is what a mount daemon writes beside its socket.
type mountState struct {
	Instance   string    `json:"instance"`
	Mountpoint string    `json:"mountpoint"`
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	Log        string    `json:"log"`
	Dev        string    `json:"dev,omitempty"` // the mount's device (major:minor): tells it from another instance's of the same name
	// StartTicks is the daemon's start time (field 22 of /proc/PID/stat):
	// with PID, it tells the daemon from a process that got its PID after
	// it died (a reboot keeps a state file in the data folder).
	StartTicks uint64 `json:"start_ticks,omitempty"`

	// goneDaemon is the PID the file names when that process is not the
	// daemon (readState then sets PID to 0): for messages only.
	goneDaemon int
}

// shownPID is the daemon's PID for messages: the one the state file names.
func (st mountState) shownPID() int { return cmp.Or(st.PID, st.goneDaemon) }

// mountStatus is what `lamina status` shows of a live mount.
type mountStatus struct {
	mountState
	lfs.Stats
	ReadOnly       bool                    `json:"read_only,omitempty"`        // the database role may only read
	Stale          []string                `json:"stale,omitempty"`            // other mounts of the instance whose daemon died (staleMounts)
	FailedCommits  int64                   `json:"failed_commits"`             // files whose commit at close failed and is not done yet: staged, tried again
	FailedFiles    []stage.StagedFile      `json:"failed_files,omitempty"`     // the first 20 of them: key and staged bytes
	PendingRecords int                     `json:"pending_records"`            // versions whose storage record is not yet written
	Uploads        *cache.Pending          `json:"uploads,omitempty"`          // S3: staged objects not yet uploaded
	LostUploads    *instance.LostUploads   `json:"lost_uploads,omitempty"`     // S3: staged objects removed before their upload, until --forget-lost
	AfterTakeOver  *instance.AfterTakeOver `json:"after_take_over,omitempty"`  // S3: versions committed after a take-over, in no usable catalog, until --forget-take-over
	DiskCache      *cache.CacheInfo        `json:"disk_cache,omitempty"`       // S3: the local cache of fetched data
	Storage        *retry.Health           `json:"storage,omitempty"`          // S3: whether the server answered the last calls
	DedupIndex     string                  `json:"dedup_index,omitempty"`      // the dedup index (index.db) is being rebuilt or could not be: why; closes store content storage holds again meanwhile
	CatalogError   string                  `json:"catalog_error,omitempty"`    // the catalog did not answer a read for status (PostgreSQL away)
	CommitFailing  string                  `json:"commit_failing,omitempty"`   // bbolt: the error of a catalog commit that fails (a full disk), retried; writes fail meanwhile
	CommitWaiting  int                     `json:"commit_waiting,omitempty"`   // the changes made through the mount that wait for it, in memory
	CommitSince    time.Time               `json:"commit_since,omitzero"`      // since when it fails
	TakenOver      string                  `json:"taken_over_by,omitempty"`    // the instance that took the storage over: the mount is read-only
	CatalogLost    string                  `json:"catalog_lost,omitempty"`     // the database no longer holds the instance's catalog (reset): the mount is read-only
	CatalogNewer   string                  `json:"catalog_upgraded,omitempty"` // a newer lamina upgraded the catalog's schema: the mount is read-only
	Detached       bool                    `json:"detached,omitempty"`         // unmounted lazily (umount --force by another user) and still used: served until the last user lets go
	OpenForWriting int                     `json:"open_for_writing"`           // files open for writing through the mount: a plain umount waits for them
	WritingKeys    []string                `json:"writing_keys,omitempty"`     // the first ten of them
	// Set by the CLI that asks: true (an unmountedStatus is false), and
	// from the daemon's hello (build.go).
	Mounted       bool   `json:"mounted"`
	DaemonBuild   string `json:"daemon_build"`   // the daemon's build, empty for one older than builds in hellos
	BuildMismatch bool   `json:"build_mismatch"` // the daemon runs another build than this lamina: lamina commands may only read through it
}

const readyFDEnv = "LAMINA_READY_FD"

func cmdMount() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "mount the catalog as a filesystem: keys as folders, @vN versions, .meta sidecars",
		ArgsUsage: "DIR",
		Description: examples(
			"lamina mount ~/lamina",
			"lamina mount ~/lamina --show-versions --show-meta",
			"lamina mount ~/lamina --foreground --debug"),
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "foreground", Usage: "stay attached and log to stderr", DefaultText: "a daemon keeps the mount"},
			&cli.BoolFlag{Name: "show-versions", Usage: "list name@vN entries in folders (they always resolve)"},
			&cli.BoolFlag{Name: "show-meta", Usage: "list name.meta sidecars in folders (they always resolve)"},
			&cli.BoolFlag{Name: "no-xattrs", Usage: "no user.lamina.* extended attributes (saves a request on each new file's first write)"},
			&cli.BoolFlag{Name: "no-lineage", Usage: "track no runs through this mount (lamina run then records no inputs or outputs here)"},
			&cli.BoolFlag{Name: "debug", Usage: "log every FUSE request (with --foreground)"},
			&cli.BoolFlag{Name: "sync-upload", Usage: "S3 storage: close() of a written file waits until S3 has its data, or, if S3 fails past the retry budget, until it is staged for the queue", DefaultText: "uploads queue in the background"},
			&cli.StringFlag{Name: "cache-size", Usage: "S3 storage: bound of the local cache of fetched data, e.g. 20GB (default: the instance's, see lamina cache limit)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitf(2, "usage: lamina mount DIR [--foreground] [--show-versions] [--show-meta]")
			}
			if v := c.String("cache-size"); v != "" {
				if _, err := parseCacheSize(v); err != nil {
					return exitf(2, "--cache-size: %v", err)
				}
			}
			dir, err := lfs.Abs(c.Args().First())
			if err != nil {
				return err
			}
			dirs, s, err := currentSettings(c)
			if err != nil {
				return err
			}
			if !strings.HasPrefix(s.Storage, "s3://") {
				for _, f := range []string{"cache-size", "sync-upload"} {
					if c.IsSet(f) {
						return errLocalCache("--" + f) // backend.go
					}
				}
			}
			if err := lfs.CheckMountpoint(dir); err != nil {
				return err
			}
			if st, ok := liveMount(dirs, s); ok {
				if st.Mountpoint == "" { // another user's daemon, say
					return fmt.Errorf("instance %q is already mounted (daemon pid %d, its mountpoint not known here); one mount per instance: unmount it first", s.Name, st.PID)
				}
				return fmt.Errorf("instance %q is already mounted at %s (daemon pid %d); one mount per instance: `lamina umount %s` first", s.Name, st.Mountpoint, st.PID, st.Mountpoint)
			}
			if p := leftInCache(s); p != "" { // layout.go
				return fmt.Errorf("instance %q: %s, which an older lamina kept in the cache folder, could not be moved to %s (see above): a mount would not see what it holds; move what it holds there by hand (journal last, appended to a journal there) and mount again", s.Name, p, s.DataDir)
			}
			if err := clearStaleMounts(c, dirs, s, dir); err != nil {
				return err
			}
			if !c.Bool("foreground") {
				return spawnDaemon(c, dirs, s, dir)
			}
			return runDaemon(c, dirs, s, dir)
		},
	}
}

// staleMounts are the user's mounts of instance s other than at dir whose
// daemon does not answer: what a killed daemon left (mountinfo keeps them,
// the state file may name the next mount already).
func staleMounts(s instance.Settings, dir string) []string {
	var out []string
	for _, m := range lfs.MountsOf("lamina:"+s.Name, os.Getuid()) {
		if m.Dir != dir && !answers(m.Dir) {
			out = append(out, m.Dir)
		}
	}
	return out
}

// clearStaleMounts detaches the user's stale mounts of s elsewhere than
// dir before a new mount: after a kill -9 of the daemon, mounting at
// another folder left the old one answering "transport endpoint is not
// connected", and status showed only the new one. A mount whose daemon
// answers is left alone: this runtime folder's own is refused before
// (liveMount), and one registered elsewhere (another XDG_RUNTIME_DIR) may
// be a second workstation's view of a PostgreSQL instance; a bbolt
// catalog's lock refuses it by itself.
func clearStaleMounts(c *cli.Context, dirs instance.Dirs, s instance.Settings, dir string) error {
	for _, m := range lfs.MountsOf("lamina:"+s.Name, os.Getuid()) {
		if m.Dir == dir || answers(m.Dir) || mountDaemon(m.Dir) > 0 {
			continue // served, or its daemon lives (stopped, busy): not stale
		}
		if err := lfs.ClearStale(m.Dir); err != nil {
			return fmt.Errorf("instance %q has a stale mount at %s (its daemon died) that could not be cleared (%v): run `lamina umount %s`", s.Name, m.Dir, err, m.Dir)
		}
		if st, err := readState(dirs, s.Name); err == nil && st.Mountpoint == m.Dir && !processAlive(st.PID) {
			os.Remove(statePath(dirs, s.Name))
			os.Remove(dirs.SocketPath(s.Name))
		}
		fmt.Fprintf(c.App.ErrWriter, "lamina: cleared the stale mount of %s at %s (its daemon had died)\n", s.Name, m.Dir)
	}
	return nil
}

// liveMount reports the instance's mount daemon if one answers.
func liveMount(dirs instance.Dirs, s instance.Settings) (mountState, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cl, err := catalogrpc.Dial(ctx, dirs.DaemonSocket(s), s.ID)
	if err != nil {
		return mountState{}, false
	}
	defer cl.Close()
	st, _ := readState(dirs, s.Name)
	if st.PID == 0 {
		st.PID = cl.Hello().PID
	}
	if st.Mountpoint == "" {
		// Found through the data folder's socket link: mounted with
		// another XDG_RUNTIME_DIR, whose state file names it.
		st.Mountpoint = daemonMountpoint(st.PID)
	}
	return st, true
}

func statePath(dirs instance.Dirs, name string) string {
	return filepath.Join(dirs.RuntimeDir(name), "mount.json")
}

// readState reads the state file of instance name's mount. A PID that is
// not verifiably the daemon's (a process that got the PID of a daemon that
// died, after a reboot say) comes back as 0, so that nothing takes that
// process for the daemon nor signals it; goneDaemon keeps it for messages.
func readState(dirs instance.Dirs, name string) (mountState, error) {
	var st mountState
	path := statePath(dirs, name)
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, err
	}
	if st.PID <= 0 || st.PID == os.Getpid() || processState(st.PID) == 0 {
		return st, nil // gone: the callers see so themselves
	}
	start, ok := processStart(st.PID)
	switch {
	case ok && st.StartTicks != 0 && start == st.StartTicks:
		return st, nil
	case ok && st.StartTicks == 0 && isDaemonOf(st.PID, st.Mountpoint):
		// An older daemon's file, without its start time: recorded now,
		// so that the PID is told from another process after it dies.
		st.StartTicks = start
		if nb, err := json.Marshal(st); err == nil {
			tmp := path + ".tmp"
			if os.WriteFile(tmp, nb, 0o600) == nil && os.Rename(tmp, path) != nil {
				os.Remove(tmp)
			}
		}
		return st, nil
	}
	st.goneDaemon, st.PID = st.PID, 0
	return st, nil
}

// processStart is the start time of process pid (field 22 of
// /proc/PID/stat, in clock ticks since boot).
func processStart(pid int) (uint64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	// After the command's ")": field 3 (state) onwards; 22 is the 20th.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	return v, err == nil
}

// isDaemonOf reports whether process pid is `lamina mount --foreground`
// of folder dir (its command line says so).
func isDaemonOf(pid int, dir string) bool {
	p := fmt.Sprintf("/proc/%d", pid)
	raw, err := os.ReadFile(p + "/cmdline")
	if err != nil {
		return false
	}
	argv := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	if len(argv) < 3 || !strings.Contains(filepath.Base(argv[0]), "lamina") ||
		!slices.Contains(argv, "mount") || !slices.Contains(argv, "--foreground") {
		return false
	}
	arg := argv[len(argv)-1]
	if !filepath.IsAbs(arg) {
		cwd, err := os.Readlink(p + "/cwd")
		if err != nil {
			return false
		}
		arg = filepath.Join(cwd, arg)
	}
	return dir != "" && filepath.Clean(arg) == filepath.Clean(dir)
}

// removeOwnState removes the state file of the instance's mount if it is
// this process's: a daemon that drained its uploads after a new mount of
// the instance started must not unregister the new one.
func removeOwnState(dirs instance.Dirs, name string) {
	if st, err := readState(dirs, name); err == nil && st.PID != os.Getpid() {
		return
	}
	os.Remove(statePath(dirs, name))
}

// logKeep is the size past which a new daemon starts mount.log afresh.
const logKeep = 8 << 20

// mountLogPath is the log the daemons of instance name write.
func mountLogPath(dirs instance.Dirs, name string) string {
	return filepath.Join(dirs.RuntimeDir(name), "mount.log")
}

// spawnDaemon starts `lamina mount --foreground` detached, with its output
// in a log file, and waits until it says the mount is ready (or why not).
func spawnDaemon(c *cli.Context, dirs instance.Dirs, s instance.Settings, dir string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	rdir := dirs.RuntimeDir(s.Name)
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return err
	}
	// Daemons append to one log: the lines of the one before (why its
	// closes failed, say, which status and umount point to) outlive the
	// next mount, and a daemon still stopping (draining uploads) goes on
	// writing there. Past logKeep it moves to mount.log.1, unless a daemon
	// still writes to it.
	logPath := mountLogPath(dirs, s.Name)
	if fi, err := os.Stat(logPath); err == nil && fi.Size() > logKeep {
		if st, err := readState(dirs, s.Name); err != nil || !processAlive(st.PID) {
			os.Rename(logPath, logPath+".1")
		}
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	var logStart int64 // where this daemon's lines begin
	if fi, err := logf.Stat(); err == nil {
		logStart = fi.Size()
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	args := []string{"--instance", s.Name, "mount", "--foreground"}
	for _, f := range []string{"show-versions", "show-meta", "no-xattrs", "no-lineage", "debug", "sync-upload"} {
		if c.Bool(f) {
			args = append(args, "--"+f)
		}
	}
	if v := c.String("cache-size"); v != "" {
		args = append(args, "--cache-size", v)
	}
	args = append(args, "--", dir)
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, logf, logf
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("cannot start the mount daemon: %w", err)
	}
	pw.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	msg := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(pr, 64<<10))
		msg <- strings.TrimSpace(string(b))
	}()
	select {
	case m := <-msg:
		// Warnings come first, a line each, then "ok" or "error: …".
		lines := strings.Split(m, "\n")
		for _, l := range lines[:len(lines)-1] {
			fmt.Fprintln(c.App.ErrWriter, "lamina: "+l)
		}
		m = lines[len(lines)-1]
		if m == "ok" {
			fmt.Fprintf(c.App.Writer, "mounted %s at %s (daemon pid %d, log %s)\n", s.Name, dir, cmd.Process.Pid, logPath)
			return nil
		}
		if m == "" {
			err := <-exited
			return fmt.Errorf("the mount daemon stopped before the mount was ready (%v):\n%s", err, logSince(logPath, logStart, 20))
		}
		cmd.Process.Signal(syscall.SIGTERM)
		m = strings.TrimPrefix(m, "error: ")
		if strings.Contains(m, "fusermount") {
			if says := fusermountSays(logPath, logStart); says != "" {
				m += "\n" + says
			}
		}
		return errors.New(m)
	case <-time.After(60 * time.Second):
		cmd.Process.Signal(syscall.SIGTERM)
		return fmt.Errorf("the mount daemon did not get ready within 60 s; see %s", logPath)
	case <-c.Context.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		return c.Context.Err()
	}
}

// runDaemon mounts, serves the catalog to the CLI, and unmounts on SIGINT
// or SIGTERM (or when someone else unmounts).
func runDaemon(c *cli.Context, dirs instance.Dirs, s instance.Settings, dir string) (err error) {
	var ready *os.File
	if fd, perr := strconv.Atoi(os.Getenv(readyFDEnv)); perr == nil && fd > 2 {
		ready = os.NewFile(uintptr(fd), "ready")
		os.Unsetenv(readyFDEnv)
		defer func() {
			if err != nil {
				fmt.Fprintf(ready, "error: %s\n", explain(err))
			}
			ready.Close()
		}()
	}
	level := slog.LevelInfo
	if c.Bool("debug") {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
	hup := hangup(log, ready == nil) // spawned (ready): no terminal

	var cacheSize int64
	if v := c.String("cache-size"); v != "" {
		if cacheSize, err = parseCacheSize(v); err != nil {
			return exitf(2, "--cache-size: %v", err)
		}
	}
	bo := backendOptions{syncUpload: c.Bool("sync-upload"), keep: true, own: true, cacheSize: cacheSize, log: log, check: true}
	backend, rem, err := openBackend(c.Context, s, bo)
	var warnings []string
	if lost, err := os.ReadFile(lostChangesPath(dirs, s.Name)); err == nil {
		// The last stop could not save them, and no umount showed it (an
		// unmount from outside).
		warnings = append(warnings, "warning: "+lastStopNote+strings.TrimPrefix(strings.TrimSpace(string(lost)), "catalog: "))
		os.Remove(lostChangesPath(dirs, s.Name))
	}
	offline := func(err error) {
		warnings = append(warnings, fmt.Sprintf("warning: storage %s does not answer (%s): the mount serves the catalog and what the cache holds and queues what is written; other reads fail with EIO until it answers", s.Storage, rootCause(err)))
		log.Warn("storage does not answer; mounted anyway", "err", err)
	}
	var away error       // the server did not answer at the start
	if serverAway(err) { // a laptop away from the network still mounts
		offline(err)
		away = err
		bo.check = false
		backend, rem, err = openBackend(c.Context, s, bo)
	}
	if err != nil {
		return err
	}
	defer rem.close()
	if away != nil {
		rem.retry.Failed(away) // status says so until it answers
	}
	if err := instance.New(s, nil, backend, nil).CheckStorage(c.Context, false); serverAway(err) { // owner.go
		if len(warnings) == 0 {
			offline(err)
		}
	} else if err != nil {
		// The packs the queue holds still go; the CLI waits a minute for
		// the daemon's answer, so this waits 40 s at most.
		err = takenOverUploads(c.Context, s, rem, err, 40*time.Second, nil, true) // the daemon: its error tells the CLI
		return withStagedTakenOver(c.Context, s, err)
	}
	// Another instance may take the storage over while this one is
	// mounted (init --take-over): its gc would then delete what this mount
	// writes. The owner is read again every ownerCheckEvery, before a
	// write when the last check is older, and after each write (a close
	// whose packs landed after a take-over fails); once taken, storage
	// refuses writes and the mount turns read-only.
	ownerRead := backend // an uncached read of the owner object
	if rem != nil {
		ownerRead = rem.retry
	}
	taken := make(chan instance.Owner, 1)
	watch := instance.New(s, nil, backend, nil).WatchOwner(ownerRead, ownerCheckEvery(), func(o instance.Owner) { taken <- o })
	if rem == nil {
		// A local folder: a close writes its packs there itself, and the
		// owner is a file read. On S3 a close stages its packs for the
		// upload queue; a GET per close would cost a third of small-file
		// creates, so the window of ownerCheckEvery stays there.
		watch.CheckAfterWrites()
	}
	backend = watch.Guard(backend)
	// Uploads still queued go last, once the catalog and everything else
	// are let go: a daemon that waits for a server that is away must not
	// hold the catalog, and `lamina status` and `umount --force` find it by
	// its state file until it is done.
	mounted := false
	defer func() {
		if mounted {
			drainUploads(rem, dirs, s, log)
			removeOwnState(dirs, s.Name)
			log.Info("stopped")
		}
	}()
	store, err := cache.NewStore(backend, filepath.Join(s.DataDir, "index.db"), cache.DefaultParams)
	if err != nil {
		return err
	}
	store.SetLogger(log)
	var dedupIndex atomic.Pointer[string] // for status: "" when built
	go keepIndexBuilt(c.Context, store, log, &dedupIndex, indexRetryWait)
	if rem == nil {
		store.SetPackUploads(2) // local storage: a pack write is a copy into the page cache
	} else if usesPostgres(s) {
		// Only a shared catalog shows versions whose packs another
		// workstation has not uploaded yet: with a catalog file, the
		// daemon reads what it staged itself, and the CLI uploads before
		// it commits. A pack missing there is lost; waiting for it held
		// every READ of its file (backend.go).
		store.SetPackWait(packWait())
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		go limitMemory(c.Context, daemonMemLimit) // memlimit.go
	}
	foreign, upgraded := make(chan error, 1), make(chan error, 1)
	migrated := func(from, to int) {
		note := schemaMigratedNote(from, to) // said by `lamina mount`, and the log
		warnings = append(warnings, "warning: "+note)
		log.Warn(note)
	}
	cat, pg, writable, err := openDaemonCatalog(c.Context, s, log, func(err error) { foreign <- err }, func(err error) { upgraded <- err }, migrated) // postgres.go
	if err != nil {
		return err
	}
	defer cat.Close()
	if b, ok := cat.(*catalog.Bolt); ok {
		// The catalog file is this daemon's (held): a note there is that
		// of one killed while its commit failed.
		if t := readFailingNote(commitFailingPath(dirs, s.Name)); t != "" {
			warnings = append(warnings, "warning: "+lastStopNote+t)
			log.Warn("lamina mount: " + lastStopNote + t)
		}
		if note, err := openFailingNote(commitFailingPath(dirs, s.Name)); err != nil {
			log.Warn("lamina mount: cannot create the note of a failing catalog commit; a kill -9 while one fails would lose its changes without a word", "err", err)
		} else {
			b.OnCommitFailing(note.set)
			defer note.close()
		}
	}
	// A root with no owner record that holds none of the data of the
	// catalog's versions (an empty mount point where its disk is not
	// mounted) takes no write: the check above had no catalog to ask.
	if err := instance.New(s, cat, backend, nil).CheckLost(c.Context); err != nil && !serverAway(err) { // owner.go
		return err
	}
	if rem != nil {
		rem.nameLost(instance.New(s, cat, backend, store)) // backend.go
	}
	sock := dirs.SocketPath(s.Name)
	l, err := catalogrpc.Listen(sock)
	if errors.Is(err, catalogrpc.ErrServing) {
		return fmt.Errorf("instance %q is already mounted (its daemon answers on %s)", s.Name, sock)
	}
	if err != nil {
		return err
	}
	defer os.Remove(sock)
	defer l.Close()
	// A CLI with another XDG_RUNTIME_DIR finds the socket through the
	// instance's data folder (instance.DaemonSocket).
	if unlink, err := dirs.LinkSocket(s, sock); err != nil {
		log.Warn("cannot record the socket in the instance's data folder: a CLI with another XDG_RUNTIME_DIR will not find this mount", "err", err)
	} else {
		defer unlink()
	}

	var writes *stage.Stage // nil: a read-only mount (the database role may only read)
	var tombs *instance.Tombstones
	if writable {
		if writes, tombs, err = mountWrites(c.Context, s, cat, backend, store, log); err != nil { // mount_write.go
			return err
		}
	}
	// Lineage: runs register through the socket (tracker.Wrap below); the
	// mount asks the tracker on OPEN and CREATE.
	var tracker lfs.Tracker
	var tk *lineage.Tracker
	rpcCat := cat
	if !c.Bool("no-lineage") {
		// On PostgreSQL other daemons (other instances' mounts on this host)
		// share the catalog: a run may be registered with one of them.
		tk = lineage.NewTracker(cat, lineage.TrackerOptions{Logger: log, Mountpoint: dir, Shared: pg != nil})
		defer tk.Close()
		tracker, rpcCat = tk, tk.Wrap(cat)
		if writes != nil {
			// A close that wrote a version's bytes again: reading it back
			// is then no input of the run.
			writes.OnReproduced(tk.Reproduced)
		}
		// Runs of this host left running by a process that died while no
		// daemon watched it are abandoned (the tracker reaps those
		// registered with it), and so are the job runs a daemon that died
		// left running after their pipeline ended (lineage.Orphaned); those whose process lives on (a run begun
		// before this mount, or before a restart of its daemon) are
		// registered with the tracker, so what they do from now on through
		// the mount is theirs; so are those that ended leaving processes
		// that still run (they linger).
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if runs, err := cat.ListRuns(ctx, catalog.RunQuery{}); err == nil {
				runs = lineage.SweepRuns(ctx, cat, runs)
				if got := tk.Resume(ctx, runs); len(got) > 0 {
					log.Info("lineage: runs begun before this daemon tracked again", "runs", got)
				}
			}
		}()
	}
	m, err := lfs.New(dir, cat, store, lfs.MountOptions{
		Options: lfs.Options{ShowVersions: c.Bool("show-versions"), ShowMeta: c.Bool("show-meta")},
		Name:    s.Name, NoXAttrs: c.Bool("no-xattrs"), StatfsPath: statfsPath(s),
		Debug: c.Bool("debug"), Logger: log,
		Stage: writes, Scratch: scratchPatterns(s), ScratchDir: scratchDir(s),
		Tracker: tracker, ReadAheadKB: readAheadKB(s),
	})
	if err != nil {
		return explainMount(err)
	}
	if writes != nil {
		// Patterns another workstation changed (lamina connect) hide the
		// scratch files none matches now: say so, as scratch rm refuses.
		if hidden := hiddenScratch(scratchDir(s), nil, scratchPatterns(s)); len(hidden) > 0 {
			more := ""
			if len(hidden) > 3 {
				hidden, more = hidden[:3], ", …"
			}
			warnings = append(warnings, fmt.Sprintf("warning: scratch files no scratch pattern matches are not shown (%s%s): they stay in %s; `lamina scratch add PATTERN` shows them again", strings.Join(hidden, ", "), more, scratchDir(s)))
		}
	}
	if tk != nil {
		tk.SetLinks(m.LinkTarget)     // outputs written through the mount's links
		tk.SetScratch(m.ScratchFile)  // script: copies in .snakemake
		tk.SetAdopter(m.AdoptWriters) // lamina run -- cmd > out
	}
	// The hit ratio in status is that of the mount's reads: what the
	// daemon read to start (its records) made a fresh mount show 100%.
	var atStart cache.CacheInfo
	if rem != nil {
		atStart = rem.disk.Info()
	}
	if writes != nil {
		writes.OnRetried(m.Changed) // a failed close committed later: no handle tells the mount
	}
	// On S3 the owner is read every ownerCheckEvery, not after each close:
	// the versions committed between a take-over and the check that sees
	// it are in this catalog only. The mount keeps the names of its recent
	// commits to name those then (afterTakeOverNote).
	var recent recentCommits
	if writes != nil && rem != nil {
		writes.OnCommitted(func(v catalog.Version) {
			name := fmt.Sprintf("%s@v%d", v.Key, v.Version)
			if o, taken := watch.Taken(); taken {
				// A close whose commit ended as the take-over was seen.
				if err := s.RecordAfterTakeOver(o.Name, recent.cutoff(watch), []string{name}); err != nil {
					log.Error("cannot record a version committed after the take-over", "version", name, "err", err)
				}
				log.Error(fmt.Sprintf("%s@v%d committed after instance %q took the storage over, not in its catalog", v.Key, v.Version, o.Name))
				return
			}
			recent.add(name, watch.LastSeenOurs())
		})
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go watch.Run(watchCtx)
	// lost is the catalog's ErrForeign once the mount has acted on it: the
	// status says so only when the kernel has forgotten what it cached.
	var lost atomic.Pointer[error]
	// newer is the catalog's ErrUpgraded once the mount has acted on it.
	var newer atomic.Pointer[error]
	go func() {
		for taken, foreign, upgraded := taken, foreign, upgraded; taken != nil || foreign != nil || upgraded != nil; { // each comes once
			select {
			case o := <-taken:
				taken = nil
				m.SetReadOnly()
				log.Error(fmt.Sprintf("storage taken over by instance %q (catalog %s) on %s: the mount is read-only from now on (writes get EROFS); unmount it and use %q", o.Name, o.Catalog, o.Since.Format(time.DateOnly), o.Name))
				since := recent.cutoff(watch)
				if names := recent.since(since); len(names) > 0 {
					if err := s.RecordAfterTakeOver(o.Name, since, names); err != nil {
						log.Error("cannot record the versions committed after the take-over", "err", err)
					}
					log.Error(afterTakeOverNote(s, &instance.AfterTakeOver{Owner: o.Name, Since: since, Versions: names}))
				}
			case err := <-foreign:
				foreign = nil
				m.SetReadOnly()
				// The catalog's reads fail from now on; the kernel's cached
				// names, attributes and pages go too, so that nothing
				// listed before answers for its timeout.
				m.ForgetListings()
				lost.Store(&err)
				log.Error(fmt.Sprintf("the database at %s no longer holds the catalog of instance %q (id %s): the mount is read-only from now on (writes get EROFS), "+
					"nothing is written into it nor read from it (EIO); restore the database, then remount (%v)", postgres.Redact(s.Catalog), s.Name, s.ID, err))
			case err := <-upgraded:
				upgraded = nil
				// Reads go on; writes would write rows the way the newer
				// schema no longer expects. Closes that fail keep their
				// bytes staged: the upgraded lamina's next mount commits them.
				m.SetReadOnly()
				newer.Store(&err)
				log.Error(fmt.Sprintf("%v: the mount is read-only from now on (writes get EROFS); upgrade lamina on this workstation, then `lamina umount %s && lamina mount %s`", err, dir, dir))
			case <-watchCtx.Done():
				return
			}
		}
	}()
	st := mountState{Instance: s.Name, Mountpoint: dir, PID: os.Getpid(), Started: time.Now().UTC().Truncate(time.Second),
		Log: mountLogPath(dirs, s.Name), Dev: m.Dev()}
	st.StartTicks, _ = processStart(os.Getpid())
	if ready == nil {
		st.Log = "" // stderr
	}
	if pg != nil {
		// Other workstations' changes reach the kernel as they commit, and
		// the runs other daemons of the catalog start (another instance's
		// mount on this host may be the one a run registers with, and the
		// run may use this mount too) reach the tracker.
		var runs changeSink
		if tk != nil {
			runs = tk
		}
		stopListen := listenChanges(pg, m, runs, log) // postgres.go
		defer stopListen()
	}
	var snapshot func(context.Context, string) error
	if b, ok := cat.(*catalog.Bolt); ok {
		snapshot = b.Snapshot // export-catalog while mounted
	}
	if ts, ok := cat.(catalog.TermSearcher); ok {
		// Search by the names terms have now (search.go).
		rpcCat = namedSearch{Catalog: rpcCat, in: instance.New(s, cat, backend, store), ts: ts, log: log}
	}
	srv := catalogrpc.NewServer(rpcCat, catalogrpc.ServerOptions{
		ID: s.ID, Build: buildID(), BuildTime: buildTime(), Changed: m.Changed, Logger: log, Snapshot: snapshot,
		Cache: func(a catalogrpc.CacheArgs) (any, error) {
			if rem == nil {
				return nil, cache.ErrNoCache
			}
			// Blocks CLI commands fetched meanwhile are counted and
			// evicted under this daemon's limit (it owns the folder),
			// files gone are dropped: a CLI's nudge is an "info" call
			// (backend.go, nudgeDaemon).
			if err := rem.disk.Rescan(); err != nil {
				return nil, err
			}
			if a.Op == "prefetch" { // cache.go
				return prefetchBatch(instance.New(s, cat, backend, store), rem.disk, a)
			}
			r := cacheReport{Before: rem.disk.Info()}
			switch a.Op {
			case "info": // the daemon's own limit and figures (cache.go)
			case "clear":
				rem.disk.Clear()
			case "limit":
				if a.Limit <= 0 { // 0 would cache nothing, and reads need the cache
					return nil, fmt.Errorf("cache limit %d: give a size, e.g. 1GB; a cache is needed for reads", a.Limit)
				}
				rem.disk.SetLimit(a.Limit)
			default:
				return nil, fmt.Errorf("cache: no operation %q", a.Op)
			}
			r.After = rem.disk.Info()
			return r, nil
		},
		Status: func() any {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			health := make(chan retry.Health, 1)
			if rem != nil { // beside the catalog's read, not after it
				go func() { health <- rem.health(ctx) }()
			}
			ob, oerr := cat.Outbox(ctx) // a catalog read: does the database answer
			ms := mountStatus{mountState: st, Stats: m.Stats(), PendingRecords: len(ob), ReadOnly: writes == nil}
			if d := dedupIndex.Load(); d != nil {
				ms.DedupIndex = *d
			}
			if ms.DedupIndex == "" && store.IndexUnbuilt() { // made anew since keepIndexBuilt looked
				ms.DedupIndex = "made anew (set aside as damaged, or deleted): rebuilt from the packs in storage within seconds; until then closes store content again that storage holds"
			}
			open := m.OpenForWriting()
			ms.Detached, ms.OpenForWriting, ms.WritingKeys = m.Detached(), len(open), open[:min(len(open), 10)]
			if err := newer.Load(); err != nil {
				ms.CatalogNewer = (*err).Error()
			}
			if err := lost.Load(); err != nil {
				ms.CatalogLost = (*err).Error() // says what the refused read would, rightly
			} else if oerr != nil {
				ms.CatalogError = catalogCause(s, oerr)
			}
			if b, ok := cat.(*catalog.Bolt); ok {
				if n, since, err := b.CommitFailing(); n > 0 {
					ms.CommitFailing, ms.CommitWaiting, ms.CommitSince = err.Error(), n, since
				}
			}
			if writes != nil {
				// Those whose staged bytes are still there: after a
				// take-over the way out saves them elsewhere, then
				// removes them, and they are not listed after that.
				ff := writes.FailedFiles()
				ms.FailedCommits = int64(len(ff))
				ms.FailedFiles = ff[:min(len(ff), 20)]
			}
			if o, ok := watch.Taken(); ok {
				ms.TakenOver = o.Name
			}
			if rem != nil {
				// Blocks CLI commands fetched meanwhile, files gone.
				if err := rem.disk.Rescan(); err != nil {
					log.Warn("cache: rescan failed", "err", err)
				}
				p, ci, h := rem.up.Pending(), rem.disk.Info(), <-health
				ci.Hits, ci.Misses = max(ci.Hits-atStart.Hits, 0), max(ci.Misses-atStart.Misses, 0)
				ms.Uploads, ms.DiskCache, ms.Storage = &p, &ci, &h
			}
			return ms
		},
	})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	b, _ := json.MarshalIndent(st, "", "  ")
	os.WriteFile(statePath(dirs, s.Name), b, 0o600)
	mounted = true
	os.Remove(forceStopPath(dirs, s.Name)) // one a killed daemon left would make the next plain stop a forced one
	log.Info("mounted", "instance", s.Name, "dir", dir, "pid", os.Getpid())
	if ready != nil {
		if writes == nil {
			warnings = append(warnings, "warning: the database role may only read: the mount is read-only (writes get EROFS)")
		}
		for _, w := range warnings {
			fmt.Fprintln(ready, w)
		}
		fmt.Fprintln(ready, "ok")
		ready.Close()
		ready = nil
	}

	in := instance.New(s, cat, backend, store)
	if writes != nil {
		defer writeRecordsEvery(in, recordsEvery(), watch, log)()
	}

	gone := make(chan struct{})
	go func() { m.Wait(); close(gone) }()
	forced := func() bool { _, err := os.Stat(forceStopPath(dirs, s.Name)); return err == nil }
	select {
	case <-gone:
		log.Info("unmounted from outside", "dir", dir)
	case <-c.Context.Done():
		log.Info("unmounting", "dir", dir)
		unmount(m, log, gone, forced)
	case <-hup:
		log.Info("unmounting: the terminal went away (SIGHUP)", "dir", dir)
		unmount(m, log, gone, forced)
	case err := <-served:
		log.Error("catalog server stopped", "err", err)
		unmount(m, log, gone, forced)
	}
	srv.Close()
	if b, ok := cat.(*catalog.Bolt); ok {
		settleCatalog(b, log, lostChangesPath(dirs, s.Name), forced())
	}
	if writes != nil {
		// A last try for closes whose commit failed; the next mount's
		// Recover has what is left.
		writes.StopRetries()
		if n := writes.RetryFailed(context.Background()); n > 0 {
			if o, taken := watch.Taken(); taken {
				log.Error(stagedTakenOver(s, o.Name, writes.FailedFiles(), n))
			} else {
				log.Warn("closed files not committed; their bytes stay staged for the next mount", "files", n)
			}
		}
		// Commits whose durability was deferred (unmounted from outside).
		if err := writes.Sync(context.Background()); err != nil {
			if o, taken := watch.Taken(); taken {
				log.Error(fmt.Sprintf("last commits not synced; their bytes stay staged in %s, and no mount of %q checks them now that instance %q took the storage over", stagingDir(s), s.Name, o.Name), "err", err)
			} else {
				log.Error("last commits not synced; their bytes stay staged for the next mount", "err", err)
			}
		}
	}
	// The records of versions saved through the daemon are a backup of the
	// catalog; write any still pending before the catalog is let go.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := in.FlushRecords(ctx); err != nil {
		if o, taken := watch.Taken(); taken {
			// No save or mount of this instance writes to the storage
			// any more: "the next save retries" was a promise none keeps.
			log.Warn(fmt.Sprintf("storage records not written: instance %q took the storage over, and nothing of instance %q writes there any more; the versions are in this instance's catalog (export-catalog), not in the storage's records", o.Name, s.Name), "err", err)
		} else {
			log.Warn("storage records not written; the next save retries", "err", err)
		}
	}
	if tombs != nil {
		if err := tombs.Close(ctx); err != nil {
			log.Warn("lamina mount: versions deleted for good not recorded in storage", "err", err)
		}
	}
	return nil
}

// settleCatalog is the stop's wait for changes made through the mount
// whose catalog commit fails (a full disk): tried again for up to
// settleWait (not at a forced stop), then given up. What is lost is
// logged and written to lostPath for the umount that waits to show.
func settleCatalog(b *catalog.Bolt, log *slog.Logger, lostPath string, forced bool) {
	n, _, err := b.CommitFailing()
	if n == 0 {
		return
	}
	log.Warn("lamina mount: changes made through the mount wait for a catalog commit that fails; trying again before stopping", "changes", n, "err", err)
	wait := settleWait
	if forced {
		wait = 0 // one try
	}
	for deadline := time.Now().Add(wait); ; time.Sleep(500 * time.Millisecond) {
		if b.Flush(context.Background()) == nil {
			log.Info("lamina mount: the waiting changes are committed")
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	if lost := b.GiveUpLazy(); lost != nil {
		log.Error("lamina mount: changes made through the mount are lost: the catalog could not commit them", "err", lost)
		os.WriteFile(lostPath, []byte(lost.Error()+"\n"), 0o600)
	}
}

// settleWait bounds settleCatalog.
const settleWait = 10 * time.Second

// lostChangesPath is where a stopping daemon names the changes it could
// not save (settleCatalog), for umount to show.
func lostChangesPath(dirs instance.Dirs, name string) string {
	return filepath.Join(dirs.RuntimeDir(name), "lost-changes")
}

// commitFailingNote says that changes made through the mount wait for a
// catalog commit that fails.
func commitFailingNote(st mountStatus) string {
	return fmt.Sprintf("%s made through the mount not yet saved: the catalog's commit fails since %s (%s) and is tried again every 2 s; writes fail meanwhile",
		plural(st.CommitWaiting, "change"), st.CommitSince.Local().Format(time.TimeOnly), st.CommitFailing)
}

// indexRetryWait is the first wait before keepIndexBuilt tries a failed
// rebuild again; it doubles up to 10 minutes.
var indexRetryWait = 10 * time.Second

// keepIndexBuilt rebuilds the dedup index whenever it is unbuilt (made
// anew at the start, or set aside as damaged since), until ctx ends: a
// close stores content again that storage holds until the index knows
// the packs (instance.Save waits for it; a close does not). A rebuild that
// fails (the storage away) is tried again, waiting wait, then twice as
// long each time. state says, for status, what is going on: nil or ""
// when the index is built.
func keepIndexBuilt(ctx context.Context, store *cache.Store, log *slog.Logger, state *atomic.Pointer[string], wait time.Duration) {
	set := func(f string, a ...any) { s := fmt.Sprintf(f, a...); state.Store(&s) }
	first := wait
	for {
		if err := store.CheckOldIndex(ctx); err != nil && ctx.Err() == nil {
			log.Warn("dedup index not checked against the packs in storage", "err", err)
		}
		if store.IndexUnbuilt() {
			set("rebuilding from the packs in storage: until it is done, closes store content again that storage holds")
			n, err := store.RebuildIndex(ctx, nil)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				log.Warn("dedup index not rebuilt from the packs in storage; tried again", "err", err, "in", wait)
				set("not built (%v): tried again at %s; until then closes store content again that storage holds", err, time.Now().Add(wait).Local().Format(time.TimeOnly))
			default:
				log.Info("dedup index rebuilt from the packs in storage", "blobs", n)
				set("")
				wait = first
			}
		}
		next := 10 * time.Second // a file set aside as damaged or deleted meanwhile
		if store.IndexUnbuilt() {
			next, wait = wait, min(2*wait, 10*time.Minute)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// statusOf asks the mount daemon cl talks to for its status.
func statusOf(ctx context.Context, cl *catalogrpc.Client) (mountStatus, error) {
	var st mountStatus
	raw, err := cl.Status(ctx)
	if err == nil {
		err = json.Unmarshal(raw, &st)
	}
	return st, err
}

// hangup is closed when a --foreground daemon gets SIGHUP (its terminal
// or ssh session closed): it then stops as on SIGTERM. The background
// daemon has no terminal and logs a stray SIGHUP. Unhandled, SIGHUP killed
// either at once and left a dead mount behind.
func hangup(log *slog.Logger, foreground bool) <-chan struct{} {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for range sigs {
			if foreground {
				close(done)
				return
			}
			log.Info("SIGHUP ignored: lamina umount stops the mount")
		}
	}()
	return done
}

// unmount retries while the mount is in use, then detaches it lazily. It
// does not stop while files are open for writing through the mount, unless
// told to stop now (forced: umount --force): their writers would lose what
// they have not closed. The daemon knows its open files; /proc does not
// show the processes of a mount detached lazily (umount --force by another
// user), which Unmount cannot unmount (EINVAL). It returns once gone is
// closed (the kernel let the mount go).
func unmount(m *lfs.Mount, log *slog.Logger, gone <-chan struct{}, forced func() bool) {
	deadline := time.Now().Add(10 * time.Second)
	waiting := 0
	for {
		err := m.Unmount()
		if err == nil {
			return
		}
		open := m.OpenForWriting()
		switch {
		case len(open) > 0 && !forced():
			if len(open) != waiting {
				waiting = len(open)
				log.Warn("not stopping: files are open for writing through the mount; it stops once they are closed (`lamina umount --force` stops it now)",
					"files", len(open), "keys", strings.Join(open[:min(len(open), 5)], " "))
			}
		case m.Detached():
			return // nothing to unmount, and no writer to cut off
		case m.Covered():
			// Unmounting dir, even lazily, would unmount what is over it
			// (a tmpfs and its files): wait for it to go.
			if waiting != -1 {
				waiting = -1
				log.Warn("not stopping: another file system is mounted over the mount; it stops once that is unmounted", "dir", m.Dir())
			}
		case forced() || time.Now().After(deadline):
			log.Warn("mount still busy; detaching it lazily", "err", err)
			if err := lfs.ForceUnmount(m.Dir()); err != nil {
				log.Error("cannot unmount", "err", err)
			}
			return
		}
		select {
		case <-gone:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// haveFusermount reports whether a fusermount program is installed.
func haveFusermount() bool {
	for _, prog := range []string{"fusermount3", "fusermount"} {
		if _, err := exec.LookPath(prog); err == nil {
			return true
		}
	}
	return false
}

// fusermountSays returns the lines fusermount wrote to the log past
// offset: the cause of a "fusermount exited with code 256" that go-fuse
// reports (its message goes to the daemon's stderr, the log).
func fusermountSays(logPath string, offset int64) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.NewSectionReader(f, offset, 64<<10))
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "fusermount") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}

// logSince returns the last n lines the log at logPath holds from offset
// on: a daemon's own, not the instance's earlier mounts' (a mount that
// lost a race printed its whole log, its reason the last line). A log
// rotated meanwhile is read from its start.
func logSince(logPath string, offset int64, n int) string {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return ""
	}
	if offset <= int64(len(b)) {
		b = b[offset:]
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func explainMount(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "fusermount") && !haveFusermount():
		return fmt.Errorf("%w\nMounting as a user needs fusermount3 (Debian/Ubuntu: apt-get install fuse3)", err)
	case strings.Contains(msg, "fusermount"):
		return err // spawnDaemon adds fusermount3's own message from the log
	case errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w\nMounting needs root or fusermount3 (apt-get install fuse3); in a container, run it with --device /dev/fuse --cap-add SYS_ADMIN", err)
	}
	return err
}

func cmdUmount() *cli.Command {
	return &cli.Command{
		Name:      "umount",
		Aliases:   []string{"unmount"},
		Usage:     "unmount a lamina mount and stop its daemon (also clears a stale mount left by a killed daemon)",
		ArgsUsage: "DIR",
		Description: examples(
			"lamina umount ~/lamina",
			"lamina umount --force ~/lamina"),
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "stop now: detach the mount even while processes use it (files they have not closed go to lost+found/ at the next mount) and, on S3, do not wait for queued uploads (they stay staged and resume at the next start)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitf(2, "usage: lamina umount DIR")
			}
			dir, err := lfs.Abs(c.Args().First())
			if err != nil {
				return err
			}
			dirs, err := instance.UserDirs()
			if err != nil {
				return err
			}
			w := c.App.Writer
			name, st, found := findMount(dirs, dir)
			if !found {
				// A daemon started under another XDG_RUNTIME_DIR (cron,
				// sudo, another login): reached through its socket link,
				// it is stopped as from its own runtime folder, and a busy
				// mount names its users. One that does not answer (stopped,
				// hung) is left to the cases below.
				if other, n, lst, ok := linkedMount(dirs, dir); ok && processAlive(lst.PID) && answers(dir) {
					dirs, name, st, found = other, n, lst, true
				}
			}
			if err := refuseOtherInstance(c, dir, name, st, found); err != nil {
				return err
			}
			if found && processAlive(st.PID) {
				// The daemon's mount may have been detached (umount -l,
				// another HOME's --force) and dir mounted again since:
				// unmounting dir by path would unmount that one (a tmpfs
				// and its files, another instance's mount).
				at, mounted := lfs.MountInfo(dir)
				ours := mounted && isMountOf(at, name, st)
				if mounted && !ours && slices.ContainsFunc(lfs.MountsAt(dir), func(mp lfs.MountPoint) bool { return isMountOf(mp, name, st) }) {
					// Covered: any unmount of dir would unmount what is on top.
					return exitf(1, "%s has another file system mounted over the lamina mount of %s (%s %s): unmount that first (umount %s), then run `lamina umount %s` again", dir, name, at.Type, at.Source, dir, dir)
				}
				if !ours && mounted {
					fmt.Fprintf(c.App.ErrWriter, "lamina: the mount of %s at %s was detached, and %s is now another mount (%s %s), left as it is; stopping the daemon, which waits for files still open for writing\n", name, dir, dir, at.Type, at.Source)
				}
				fst, _ := daemonStatus(c.Context, dirs, name)
				if fst.FailedCommits > 0 && fst.TakenOver != "" {
					if s, err := dirs.Load(name); err == nil {
						fmt.Fprintf(c.App.ErrWriter, "lamina: %s\n", stagedTakenOver(s, fst.TakenOver, fst.FailedFiles, int(fst.FailedCommits)))
					}
				} else if n := fst.FailedCommits; n > 0 {
					fmt.Fprintf(c.App.ErrWriter, "lamina: %s whose commit failed at close: the daemon tries once more as it stops; what still fails stays staged and the next mount commits it (%s says why)\n", plural(int(n), "closed file"), mountLogPath(dirs, name))
				}
				if s, err := dirs.Load(name); err == nil {
					if a, _ := s.AfterTakeOver(); a != nil {
						fmt.Fprintf(c.App.ErrWriter, "lamina: %s\n", afterTakeOverNote(s, a))
					}
				}
				if err := waitCommitting(c, dirs, name, dir); err != nil {
					return err
				}
				os.Remove(lostChangesPath(dirs, name)) // an earlier stop's, shown then
				unmounted := false
				if c.Bool("force") {
					os.WriteFile(forceStopPath(dirs, name), nil, 0o600)
				} else if !ours {
					// Nothing of ours at dir to unmount: the daemon is told to stop.
				} else if err := unmountWhenFree(c.App.ErrWriter, dir, 10*time.Second); errors.Is(err, errBusy) {
					// Told to stop, the daemon detaches a busy mount after
					// 10 s: a writer still writing lost its file to
					// lost+found/ while umount said "unmounted". Only
					// --force does that now.
					return exitf(1, "%s is in use%s: close what uses it (a shell's working folder, an open file) and run `lamina umount %s` again; `lamina umount --force %s` detaches it now, and files still open lose what was not closed (kept under lost+found/ at the next mount)", dir, usersOf(dir), dir, dir)
				} else if err == nil {
					// Unmounted: the daemon sees it go, commits what it was
					// given and stops by itself; waitDaemon shows that.
					unmounted = true
				}
				if !unmounted && !c.Bool("force") {
					if err := refuseWhileWriting(c.Context, c.App.ErrWriter, dirs, name, dir, st.PID); err != nil {
						return err
					}
				}
				if !unmounted && processAlive(st.PID) {
					if err := syscall.Kill(st.PID, syscall.SIGTERM); err != nil {
						return fmt.Errorf("cannot stop the mount daemon (pid %d): %w", st.PID, err)
					}
				}
				// Said at once, from the status asked above (its health is
				// current: retry.Probe), not after the wait's timeout.
				away := false
				if h, p := fst.Storage, fst.Uploads; !c.Bool("force") && h != nil && h.Failing && p != nil && p.Objects > 0 {
					fmt.Fprintln(w, storageAwayNote(*h, *p, dir))
					away = true
				}
				if err := waitDaemon(c.Context, w, dirs, name, st, c.Bool("force"), away); err != nil {
					return err
				}
				if lost, err := os.ReadFile(lostChangesPath(dirs, name)); err == nil {
					os.Remove(lostChangesPath(dirs, name))
					return exitf(1, "the mount daemon of %s stopped, but %s", dir, strings.TrimPrefix(strings.TrimSpace(string(lost)), "catalog: "))
				}
				if now, still := lfs.MountInfo(dir); still && isMountOf(now, name, st) {
					return fmt.Errorf("the daemon stopped but %s is still mounted; run `lamina umount %s` again", dir, dir)
				}
				if ours || !mounted {
					fmt.Fprintf(w, "unmounted %s\n", dir)
				} else {
					fmt.Fprintf(w, "stopped the mount daemon of %s; %s keeps the other mount\n", name, dir)
				}
				if c.Bool("force") {
					if s, err := dirs.Load(name); err == nil {
						printStagedUploads(w, s) // what --force left behind (uploads.go)
					}
				}
				return nil
			}
			mi, mounted := lfs.MountInfo(dir)
			if mounted && !strings.HasPrefix(mi.Type, "fuse.lamina") && !strings.HasPrefix(mi.Source, "lamina") {
				if slices.ContainsFunc(lfs.MountsAt(dir), func(mp lfs.MountPoint) bool { return strings.HasPrefix(mp.Type, "fuse.lamina") }) {
					return exitf(1, "%s has another file system mounted over a lamina mount (%s %s): unmount that first (umount %s), then run `lamina umount %s` again", dir, mi.Type, mi.Source, dir, dir)
				}
				return fmt.Errorf("%s is not a lamina mount (%s %s)", dir, mi.Type, mi.Source)
			}
			if found {
				os.Remove(statePath(dirs, name))
				os.Remove(dirs.SocketPath(name))
				// Its daemon is dead: what it could not save is said now,
				// not again at the next mount.
				if note := lostChangesNote(dirs, name); note != "" {
					fmt.Fprintf(c.App.ErrWriter, "lamina: warning: %s\n", note)
					os.Remove(lostChangesPath(dirs, name))
					os.Remove(commitFailingPath(dirs, name))
				}
			}
			if !mounted {
				if found {
					fmt.Fprintf(w, "%s was not mounted any more; cleared what its daemon left behind\n", dir)
					return nil
				}
				return fmt.Errorf("%s is not mounted", dir)
			}
			if answers(dir) && c.Bool("force") {
				return detachForeign(w, dir, dirs)
			}
			if answers(dir) {
				// A live daemon this user's runtime folder does not know (another
				// XDG_RUNTIME_DIR, another user's root shell): a plain unmount, which
				// fails while the mount is in use; the daemon sees it go, syncs
				// and stops by itself.
				if err := unmountWhenFree(c.App.ErrWriter, dir, 10*time.Second); errors.Is(err, errBusy) {
					return exitf(1, "%s is in use%s: close what uses it (a shell's working folder, an open file) and run `lamina umount %s` again (its daemon is running but not registered in %s)", dir, usersOf(dir), dir, dirs.Runtime)
				} else if err != nil {
					return fmt.Errorf("unmount %s: %w (its daemon is running but not registered in %s; stop it there with `lamina umount`)", dir, err, dirs.Runtime)
				}
				fmt.Fprintf(w, "unmounted %s; its daemon, not registered in %s, stops by itself\n", dir, dirs.Runtime)
				return nil
			}
			if pid := mountDaemon(dir); pid > 0 && !c.Bool("force") {
				// Alive but not answering: stopped (SIGSTOP, a debugger)
				// or busy. Clearing it cut off its writers as if it had
				// died.
				return exitf(1, "the daemon of %s (pid %d) is alive but does not answer%s; not cleared: `kill -CONT %d` if it was stopped, or `lamina umount --force %s` to detach the mount (files still open lose what was not closed; it is kept under lost+found/ at the next mount)", dir, pid, stoppedNote(pid), pid, dir)
			}
			if err := lfs.ClearStale(dir); err != nil {
				return err
			}
			fmt.Fprintf(w, "cleared a stale mount at %s (its daemon had died)\n", dir)
			return nil
		},
	}
}

// refuseOtherInstance refuses `lamina --instance X umount DIR` (or
// LAMINA_INSTANCE=X) when DIR is the mount of another instance: umount
// goes by what is mounted at DIR, and the user who named X meant to stop
// X, not whatever DIR holds. Without an instance named, DIR's mount goes.
func refuseOtherInstance(c *cli.Context, dir, name string, st mountState, found bool) error {
	want := c.String("instance")
	if want == "" {
		return nil
	}
	owner := name // its daemon's state names it (found), else ""
	if at, ok := lfs.MountInfo(dir); ok && strings.HasPrefix(at.Source, "lamina:") && !(found && isMountOf(at, name, st)) {
		// A daemon no state file here knows (another runtime folder, a
		// stale mount) or another than the state's: the source names it.
		owner = strings.TrimPrefix(at.Source, "lamina:")
	}
	if owner == "" || owner == want {
		return nil
	}
	from := "--instance"
	if os.Getenv("LAMINA_INSTANCE") == want {
		from = "LAMINA_INSTANCE"
	}
	return exitf(1, "%s is the mount of instance %q, not of %q (which %s names): nothing unmounted; run `lamina --instance %s umount %s` to unmount it, or `lamina status` to see where %q is mounted",
		dir, owner, want, from, owner, dir, want)
}

// waitCommitting is a plain umount's answer while changes made through
// the mount wait for a catalog commit that fails (a full disk): it waits
// up to 10 s for the daemon's retries, then refuses, so that the changes
// are not lost to the stop. --force goes on: the daemon tries once more
// and names what is lost.
func waitCommitting(c *cli.Context, dirs instance.Dirs, name, dir string) error {
	deadline := time.Now().Add(10 * time.Second)
	for said := false; ; time.Sleep(500 * time.Millisecond) {
		st, ok := daemonStatus(c.Context, dirs, name)
		if !ok || st.CommitWaiting == 0 {
			return nil
		}
		if c.Bool("force") {
			fmt.Fprintf(c.App.ErrWriter, "lamina: %s; --force stops after one more try\n", commitFailingNote(st))
			return nil
		}
		if !said {
			fmt.Fprintf(c.App.ErrWriter, "lamina: %s; waiting up to 10 s for room\n", commitFailingNote(st))
			said = true
		}
		if time.Now().After(deadline) {
			return exitf(1, "%s not unmounted: %s. Free space where the catalog is, then run `lamina umount %s` again; `lamina umount --force %s` stops now and loses them (it names them)",
				dir, commitFailingNote(st), dir, dir)
		}
	}
}

// refuseWhileWriting is a plain umount's answer when the daemon serves
// files open for writing although its mount could not be unmounted: one
// detached lazily (umount --force by another user), whose writers /proc
// does not show under dir (usersOf). Stopping the daemon cut them off
// (ENOTCONN; their files to lost+found/). It waits up to 10 s for them
// to close, as unmountWhenFree waits for users; the daemon of a detached
// mount stops by itself once its last user lets go. What it waits for is
// said on notice at once: a silent 10 s looked like a hang.
func refuseWhileWriting(ctx context.Context, notice io.Writer, dirs instance.Dirs, name, dir string, pid int) error {
	deadline := time.Now().Add(10 * time.Second)
	said := false
	for processAlive(pid) {
		st, ok := daemonStatus(ctx, dirs, name)
		if !ok || st.OpenForWriting == 0 {
			return nil
		}
		if !said {
			fmt.Fprintf(notice, "lamina: %s has %s open for writing through its mount (%s)%s; waiting up to 10 s for them to be closed, then refusing (`lamina umount --force %s` stops it now)\n",
				dir, plural(st.OpenForWriting, "file"), keyList(st), usersOf(dir), dir)
			said = true
		}
		if time.Now().After(deadline) {
			how := "it"
			if st.Detached {
				how = "it, detached (a lazy unmount: `lamina umount --force` by another user),"
			}
			return exitf(1, "%s is in use: %s has %s open for writing (%s); its daemon (pid %d) stops by itself once they are closed, or run `lamina umount %s` again then; `lamina umount --force %s` stops it now, and they lose what was not closed (kept under lost+found/ at the next mount)",
				dir, how, plural(st.OpenForWriting, "file"), keyList(st), pid, dir, dir)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// keyList names the keys open for writing that st lists, "…" for more.
func keyList(st mountStatus) string {
	l := strings.Join(st.WritingKeys, ", ")
	if st.OpenForWriting > len(st.WritingKeys) {
		l += ", …"
	}
	return l
}

// daemonStatus asks the daemon of the named instance for its status.
func daemonStatus(ctx context.Context, dirs instance.Dirs, name string) (mountStatus, bool) {
	s, err := dirs.Load(name)
	if err != nil {
		return mountStatus{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, 6*time.Second) // status waits up to 5 s for the catalog
	defer cancel()
	cl, err := catalogrpc.Dial(ctx, dirs.DaemonSocket(s), s.ID)
	if err != nil {
		return mountStatus{}, false
	}
	defer cl.Close()
	st, err := statusOf(ctx, cl)
	return st, err == nil
}

// detachForeign is umount --force of a served lamina mount whose daemon
// this user's runtime folder does not know (another HOME or
// XDG_RUNTIME_DIR): a lazy unmount (MNT_DETACH) when it is in use. The
// name goes at once; what still uses the mount keeps it until it lets go,
// and then the daemon sees it gone, commits what it was given and stops.
// It refused a busy mount, --force or not.
func detachForeign(w io.Writer, dir string, dirs instance.Dirs) error {
	users := usersOf(dir)
	if err := lfs.ForceUnmount(dir); err != nil {
		return fmt.Errorf("unmount --force %s: %w", dir, err)
	}
	daemon := "its daemon"
	if pid := mountDaemon(dir); pid > 0 {
		daemon = fmt.Sprintf("its daemon (pid %d)", pid)
	}
	if users == "" {
		fmt.Fprintf(w, "unmounted %s; %s, not registered in %s, stops by itself\n", dir, daemon, dirs.Runtime)
		return nil
	}
	fmt.Fprintf(w, "detached %s (lazy unmount); still pending: it is in use%s, which keep what they have open and may go on writing it; what they close is committed, and once the last lets go %s, not registered in %s, stops by itself\n",
		dir, users, daemon, dirs.Runtime)
	return nil
}

// mountDaemon returns the pid of a live lamina daemon serving the mount at
// dir (a `lamina … mount --foreground … DIR` process, as spawnDaemon
// starts it), 0 if there is none. A mount that does not answer is stale
// only when its daemon is gone: one stopped with SIGSTOP was cleared as
// if it had died, and its writers lost what they had not closed.
func mountDaemon(dir string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		if daemonMountpoint(pid) == dir && pid != os.Getpid() && processAlive(pid) {
			return pid
		}
	}
	return 0
}

// daemonMountpoint returns the mountpoint of pid when it is a `lamina …
// mount --foreground … DIR` process, as spawnDaemon starts it; else "".
func daemonMountpoint(pid int) string {
	p := "/proc/" + strconv.Itoa(pid)
	raw, err := os.ReadFile(p + "/cmdline")
	if err != nil {
		return ""
	}
	argv := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	if len(argv) < 3 || !slices.Contains(argv, "mount") || !slices.Contains(argv, "--foreground") {
		return ""
	}
	arg := argv[len(argv)-1]
	if !filepath.IsAbs(arg) {
		cwd, err := os.Readlink(p + "/cwd")
		if err != nil {
			return ""
		}
		arg = filepath.Join(cwd, arg)
	}
	return filepath.Clean(arg)
}

// stoppedNote is " (it is stopped)" when pid is stopped (state T).
func stoppedNote(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
		return " (it is stopped)"
	}
	return ""
}

// errBusy: the mount is in use (EBUSY, or fusermount3 saying so).
var errBusy = errors.New("mount in use")

// unmountWhenFree unmounts dir as umount(8) would, trying again while it
// is in use for up to wait (a process finishing its last close); errBusy
// if it stayed in use. The first time it finds dir busy it says on notice
// who uses it and that it waits, then refuses: a silent wait looked like a
// hang.
func unmountWhenFree(notice io.Writer, dir string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	said := false
	for {
		err := lfs.Unmount(dir)
		busy := err != nil && (errors.Is(err, syscall.EBUSY) || strings.Contains(err.Error(), "busy"))
		if !busy {
			return err
		}
		if !said {
			fmt.Fprintf(notice, "lamina: %s is in use%s; waiting up to %s for it to be let go, then refusing (`lamina umount --force %s` detaches it now)\n",
				dir, usersOf(dir), wait, dir)
			said = true
		}
		if time.Now().After(deadline) {
			return errBusy
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// usersOf names (as " by pid 123 (bash) in /mnt/lab/x, pid 456 (python3)
// writing /mnt/lab/a.csv, …") up to five processes whose working folder,
// root or open files are under the mount at dir, with the first such path
// of each; empty if none can be seen (another user's, without root).
// Reading the links under /proc asks the mount nothing.
func usersOf(dir string) string {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var users []string
	self := strconv.Itoa(os.Getpid())
	for _, p := range procs {
		if filepath.Base(p) == self { // answers() may have left a look-up of dir open
			continue
		}
		if len(users) == 5 {
			users = append(users, "…")
			break
		}
		links := []string{p + "/cwd", p + "/root"}
		fds, _ := filepath.Glob(p + "/fd/*")
		for _, l := range append(links, fds...) {
			t, err := os.Readlink(l)
			if err == nil && (t == dir || strings.HasPrefix(t, dir+"/")) {
				comm, _ := os.ReadFile(p + "/comm")
				how := "in" // a working folder or root
				if strings.Contains(l, "/fd/") {
					how = "reading"
					if fdWrites(p + "/fdinfo/" + filepath.Base(l)) {
						how = "writing"
					}
				}
				users = append(users, fmt.Sprintf("pid %s (%s) %s %s", filepath.Base(p), strings.TrimSpace(string(comm)), how, t))
				break
			}
		}
	}
	if len(users) == 0 {
		return ""
	}
	return " by " + strings.Join(users, ", ")
}

// fdWrites reports whether the fdinfo file at p shows a descriptor open
// for writing (its flags, octal, not O_RDONLY).
func fdWrites(p string) bool {
	b, _ := os.ReadFile(p)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return err == nil && flags&syscall.O_ACCMODE != syscall.O_RDONLY
		}
	}
	return false
}

// answers reports whether the FUSE mount at dir is served: its daemon
// answers within 2 s. A stale mount says so at once; a hung daemon (one
// stopped with SIGSTOP, say) never answers, and the caller detaches it
// like a stale one rather than wait with it.
func answers(dir string) bool { return lfs.Answers(dir, 2*time.Second) }

// linkedMount looks for the state file of a daemon mounted at dir in the
// runtime folders that instances' socket links name (Dirs.LinkedRuntime);
// it returns dirs with that runtime folder.
func linkedMount(dirs instance.Dirs, dir string) (instance.Dirs, string, mountState, bool) {
	names, _ := dirs.List()
	for _, name := range names {
		s, err := dirs.Load(name)
		if err != nil {
			continue
		}
		rt, ok := dirs.LinkedRuntime(s)
		if !ok || rt == dirs.Runtime {
			continue
		}
		other := dirs
		other.Runtime = rt
		if st, err := readState(other, name); err == nil && st.Mountpoint == dir {
			return other, name, st, true
		}
	}
	return dirs, "", mountState{}, false
}

// findMount looks for the state file of a daemon mounted at dir, among all
// instances.
// isMountOf reports whether mp is the mount of instance name whose daemon
// wrote st: by its device when st has it (names are not unique across
// homes), else by its source.
func isMountOf(mp lfs.MountPoint, name string, st mountState) bool {
	if st.Dev != "" {
		return mp.Dev == st.Dev && mp.Source == "lamina:"+name
	}
	return mp.Source == "lamina:"+name
}

func findMount(dirs instance.Dirs, dir string) (string, mountState, bool) {
	ents, _ := os.ReadDir(dirs.Runtime)
	at, _ := lfs.MountInfo(dir)
	name, found := "", mountState{}
	for _, e := range ents {
		st, err := readState(dirs, e.Name())
		if err != nil || st.Mountpoint != dir {
			continue
		}
		if isMountOf(at, e.Name(), st) {
			return e.Name(), st, true // the one mounted there now
		}
		if name == "" { // another instance's, detached, mounted there before
			name, found = e.Name(), st
		}
	}
	return name, found, name != ""
}

// processAlive reports whether pid is a running process (not a zombie).
func processAlive(pid int) bool { return processState(pid) != 0 }

// processState is the state letter of process pid in /proc (R, S, D, T for
// stopped, …), '?' when it exists but /proc does not say, and 0 when it is
// gone or a zombie.
func processState(pid int) byte {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return '?'
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	if i := strings.LastIndexByte(line, ')'); i > 0 && i+2 < len(line) {
		if c := line[i+2]; c != 'Z' && c != 'X' {
			return c
		}
		return 0
	}
	return '?'
}

// stoppedState reports whether a process state letter is a stopped one
// (SIGSTOP, Ctrl-Z, a debugger).
func stoppedState(c byte) bool { return c == 'T' || c == 't' }

func cmdStatus() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the mount of the current instance: mountpoint, daemon, cache use, pending work",
		Description: "Exit status: 0 mounted; " + fmt.Sprint(exitNotMounted) + " not mounted (what is staged or waits for upload is still shown;\n" +
			"--format json prints [], or one entry with \"mounted\": false when the instance keeps staged bytes, uploads\n" +
			"or stale mounts); 1 a mount that does not work (its daemon died, hung or is stopped: --format json prints its\n" +
			"entry, \"mounted\": false with \"error\" and \"stale\") or another error.\n" +
			"A mount's JSON entry has \"mounted\": true.\n\n" + examples(
			"lamina status",
			"lamina status --format json"),
		Flags: []cli.Flag{formatFlag("table", "json"),
			&cli.BoolFlag{Name: "forget-lost", Usage: "S3: forget the record of uploads lost before they reached S3 (their staged files were removed), once their data is saved again or the versions deleted"},
			&cli.BoolFlag{Name: "forget-take-over", Usage: "S3: forget the record of versions committed after another instance took the storage over, once they are saved into it (or given up)"}},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			dirs, s, err := currentSettings(c)
			if err != nil {
				return err
			}
			if c.Bool("forget-lost") {
				if err := s.ForgetLost(); err != nil {
					return err
				}
				fmt.Fprintln(c.App.ErrWriter, "lamina: forgot the record of lost uploads")
			}
			if c.Bool("forget-take-over") {
				if err := s.ForgetAfterTakeOver(); err != nil {
					return err
				}
				fmt.Fprintln(c.App.ErrWriter, "lamina: forgot the record of versions committed after a take-over")
			}
			w := c.App.Writer
			ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
			defer cancel()
			cl, err := catalogrpc.Dial(ctx, dirs.DaemonSocket(s), s.ID)
			if err != nil {
				st, serr := readState(dirs, s.Name)
				if serr == nil {
					switch ps := processState(st.PID); {
					case ps == 0:
						err := fmt.Errorf("instance %q: the daemon of the mount at %s (pid %d) is gone; run `lamina umount %s`", s.Name, st.Mountpoint, st.shownPID(), st.Mountpoint)
						if format == "json" {
							return brokenJSON(c, w, dirs, s, st.Mountpoint, err)
						}
						if note := stagedNotCommitted(c.Context, s); note != "" {
							err = fmt.Errorf("%w\n%s", err, note)
						}
						if note := lostChangesNote(dirs, s.Name); note != "" {
							err = fmt.Errorf("%w\n%s", err, note)
						}
						// What waits for upload, as when not mounted.
						printStagedUploads(w, s)
						return err
					case stoppedState(ps):
						err := fmt.Errorf("instance %q: the daemon of the mount at %s (pid %d) is stopped (SIGSTOP, Ctrl-Z or a debugger) and answers nothing: `kill -CONT %d` resumes it, `lamina umount --force %s` stops it", s.Name, st.Mountpoint, st.PID, st.PID, st.Mountpoint)
						if format == "json" {
							return brokenJSON(c, w, dirs, s, st.Mountpoint, err)
						}
						return err
					}
				}
				if format == "json" {
					// [] as before, unless something is kept: then one
					// entry, "mounted": false, with what the table says.
					stale := staleMounts(s, "")
					out := []unmountedStatus{}
					if um, ok := unmountedOf(c.Context, dirs, s, stale); ok {
						out = append(out, um)
					}
					if err := writeJSON(w, out); err != nil {
						return err
					}
					if len(stale) > 0 {
						return exitf(1, "") // a mount that does not work, as below
					}
					return errNotMounted
				}
				stale := staleMounts(s, "")
				switch {
				case len(stale) > 0:
					for _, d := range stale {
						if serr == nil && d == st.Mountpoint {
							// Alive (not stopped) but not answering.
							fmt.Fprintf(w, "instance %s: the mount at %s does not answer: its daemon (pid %d) is running but hung; `lamina umount --force %s` stops it\n", s.Name, d, st.PID, d)
							continue
						}
						fmt.Fprintf(w, "instance %s: stale mount at %s: its daemon died; `lamina umount %s` clears it\n", s.Name, d, d)
					}
					if note := stagedNotCommitted(c.Context, s); note != "" {
						fmt.Fprintln(w, note)
					}
					if note := lostChangesNote(dirs, s.Name); note != "" {
						fmt.Fprintln(w, note)
					}
					printStagedUploads(w, s)
					return exitf(1, "") // something failed: the output says what
				case serr == nil:
					fmt.Fprintf(w, "instance %s: the mount at %s is gone; its daemon (pid %d) is stopping (`lamina umount --force %s` stops it now)\n",
						s.Name, st.Mountpoint, st.PID, st.Mountpoint)
				default:
					fmt.Fprintf(w, "instance %s is not mounted\n", s.Name)
				}
				if note := stagedNotCommitted(c.Context, s); note != "" {
					fmt.Fprintln(w, note)
				}
				if note := lostChangesNote(dirs, s.Name); note != "" {
					fmt.Fprintln(w, note)
				}
				printStagedUploads(w, s)
				return errNotMounted
			}
			defer cl.Close()
			st, err := statusOf(ctx, cl)
			if err != nil {
				return err
			}
			st.Mounted = true
			st.Stale = staleMounts(s, st.Mountpoint)
			if isS3(s) {
				st.LostUploads, _ = s.Lost()
				st.AfterTakeOver, _ = s.AfterTakeOver()
			}
			st.DaemonBuild = cl.Hello().Build
			st.BuildMismatch = st.DaemonBuild != buildID() // build.go
			if format == "json" {
				return writeJSON(w, []mountStatus{st})
			}
			cc := st.ChunkCache
			mp := st.Mountpoint
			if st.Detached {
				mp += fmt.Sprintf(" (detached, %s open: a lazy unmount; served until its last user lets go, then the daemon stops)", plural(st.OpenForWriting, "file"))
			}
			rows := [][]string{{"instance", st.Instance}, {"mountpoint", mp}, {"pid", fmt.Sprint(st.PID)},
				{"since", st.Started.Local().Format(time.RFC3339)},
				{"chunk cache", fmt.Sprintf("%s of %s in memory (%d decoded chunks; %d hits, %d misses)", humanBytes(cc.Bytes), humanBytes(cc.Max), cc.Chunks, cc.Hits, cc.Misses)},
				{"opens to read", fmt.Sprint(st.FilesOpened)}, // each open since the start, not files open now
				{"folders listed", fmt.Sprint(st.DirsListed)},
				{"pending work", fmt.Sprintf("%d storage records to write", st.PendingRecords)},
			}
			if st.DedupIndex != "" {
				rows = append(rows, []string{"dedup index", st.DedupIndex})
			}
			if st.CatalogError != "" {
				rows = append(rows, []string{"catalog", catalogNotAnswering(st)})
			}
			if st.CommitWaiting > 0 {
				rows = append(rows, []string{"catalog", commitFailingNote(st) + "; free space where the catalog is (a plain umount waits for it)"})
			}
			if st.FailedCommits > 0 && st.TakenOver != "" {
				rows = append(rows, []string{"failed closes", strings.ReplaceAll(stagedTakenOver(s, st.TakenOver, st.FailedFiles, int(st.FailedCommits)), "\n", "\n"+strings.Repeat(" ", 16))})
			} else if st.FailedCommits > 0 {
				rows = append(rows, []string{"failed closes", fmt.Sprintf("%s whose commit at close failed: staged, tried again every few minutes and at the next mount (%s says why)", plural(int(st.FailedCommits), "file"), mountLogPath(dirs, s.Name))})
			}
			if note := afterTakeOverNote(s, st.AfterTakeOver); note != "" {
				rows = append(rows, []string{"after take-over", note})
			}
			if st.BuildMismatch {
				what, todo := buildAdvice(cl.Hello(), buildID(), buildTime(), st.Mountpoint) // build.go
				rows = append(rows, []string{"build", fmt.Sprintf("%s: lamina commands may only read through it; %s", what, todo)})
			}
			if st.ReadOnly {
				rows = append(rows, []string{"writes", "read-only: the database role may only read"})
			}
			if st.CatalogLost != "" {
				rows = append(rows, []string{"writes", fmt.Sprintf("read-only: %s; nothing is written into it. Restore the database, then `lamina umount %s && lamina mount %s`", st.CatalogLost, st.Mountpoint, st.Mountpoint)})
			}
			if st.CatalogNewer != "" {
				rows = append(rows, []string{"writes", fmt.Sprintf("read-only: %s. Upgrade lamina here, then `lamina umount %s && lamina mount %s`", st.CatalogNewer, st.Mountpoint, st.Mountpoint)})
			}
			if st.TakenOver != "" {
				rows = append(rows, []string{"writes", fmt.Sprintf("storage taken over by instance %s: read-only", st.TakenOver)})
			}
			rows = append(rows, []string{"log", st.Log})
			for _, d := range st.Stale {
				rows = append(rows, []string{"stale mount", fmt.Sprintf("%s: its daemon died; `lamina umount %s` clears it", d, d)})
			}
			rows = append(rows, remoteRows(st)...)
			for _, r := range rows {
				fmt.Fprintf(w, "%-15s %s\n", r[0], r[1])
			}
			return nil
		},
	}
}

// catalogNotAnswering is the catalog row of `lamina status` for a mount
// whose catalog did not answer. After a take-over no commit of this
// instance comes (the failed closes row says what becomes of them): it
// promised "closes are committed again then" beside that.
func catalogNotAnswering(st mountStatus) string {
	if st.TakenOver != "" {
		return fmt.Sprintf("not answering (%s): opens and listings not cached fail with EIO until it does; closes are not committed again: instance %s took the storage over", st.CatalogError, st.TakenOver)
	}
	return fmt.Sprintf("not answering (%s): opens, closes and listings not cached fail with EIO until it does; closes are committed again then", st.CatalogError)
}

// exitNotMounted is the exit status of `lamina status` for an instance
// that is not mounted: a script tells it from a mount (0) and from a
// mount that does not work or an error (1), as `systemctl status` says 3
// for a unit that is not running.
const exitNotMounted = 3

// errNotMounted ends `lamina status` of an instance that is not mounted,
// its output already written.
var errNotMounted = exitf(exitNotMounted, "")

// ownerCheckEvery is how often the daemon reads the owner of its storage
// again: 30 s, or LAMINA_OWNER_CHECK (tests).
func ownerCheckEvery() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("LAMINA_OWNER_CHECK")); err == nil && d > 0 {
		return d
	}
	return 30 * time.Second
}

// recordsEvery is how often the daemon writes the storage records of the
// versions its mount made: a minute, or LAMINA_RECORDS_EVERY (tests).
func recordsEvery() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("LAMINA_RECORDS_EVERY")); err == nil && d > 0 {
		return d
	}
	return time.Minute
}

// writeRecordsEvery writes the records the catalog's outbox holds every
// period, so that the storage root can rebuild the catalog's records of a
// mount that runs for weeks, not only once it is unmounted. It returns a
// function that stops it.
func writeRecordsEvery(in *instance.Instance, every time.Duration, watch *instance.OwnerWatch, log *slog.Logger) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		failing := false
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if _, taken := watch.Taken(); taken {
				return // nothing writes to the storage now; the stop says so
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := in.FlushRecords(ctx)
			cancel()
			if err != nil && !failing {
				log.Warn("storage records not written; retrying every "+every.String(), "err", err)
			}
			failing = err != nil
		}
	}()
	return func() { close(done); <-stopped }
}

// rootCause is the innermost message of err: "connect: connection
// refused" rather than the SDK's whole chain, on one line. The innermost
// of pgx's failure to connect joins its tries, one a line, each twice with
// sslmode=prefer: status's catalog row said the dial error twice.
func rootCause(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return strings.Join(tries(err.Error()), "; ")
		}
		err = u
	}
}

// statfsPath is the folder whose file system df and statfs(2) show for
// the mount: the root of local storage, where the data lies; for S3,
// which has no size, the data folder, where writes are staged and queued
// for upload, so the figures say how much may be written before the local
// disk fills. statfs of "s3://…" failed, and the mount showed 0 size and 0
// free: tools that check free space saw a full disk.
func statfsPath(s instance.Settings) string {
	if strings.HasPrefix(s.Storage, "s3://") {
		return s.DataDir
	}
	return s.Storage
}

// recentCommits are the versions the mount committed lately on S3, with
// when: those after a take-over are named once the mount sees it.
type recentCommits struct {
	mu   sync.Mutex
	list []recentCommit
}

type recentCommit struct {
	at   time.Time
	name string
}

// add records a commit, and drops those made well before the last check
// that still found this instance the owner (seen).
func (r *recentCommits) add(name string, seen time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	keep := seen.Add(-time.Minute)
	r.list = slices.DeleteFunc(r.list, func(c recentCommit) bool { return c.at.Before(keep) })
	r.list = append(r.list, recentCommit{at: time.Now(), name: name})
}

// since returns the names of the commits made at or after t.
func (r *recentCommits) since(t time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.list {
		if !c.at.Before(t) {
			out = append(out, c.name)
		}
	}
	return out
}

// cutoff is from when commits count as after the take-over w saw first
// (a later one, by a third instance, changes nothing of it): its claim's
// time (to the second, so a commit in that second counts), else the last
// check that still found this instance the owner.
func (r *recentCommits) cutoff(w *instance.OwnerWatch) time.Time {
	if o, ok := w.TakenFirst(); ok && !o.Since.IsZero() {
		return o.Since
	}
	return w.LastSeenOurs()
}

// brokenJSON prints the --format json entry of a mount that does not work
// (its daemon died or is stopped): "mounted": false, the error, the mount
// among the stale ones, and what the instance keeps; then exit status 1
// with the error on stderr.
func brokenJSON(c *cli.Context, w io.Writer, dirs instance.Dirs, s instance.Settings, mountpoint string, err error) error {
	stale := staleMounts(s, "")
	if !slices.Contains(stale, mountpoint) {
		stale = append(stale, mountpoint)
	}
	um, _ := unmountedOf(c.Context, dirs, s, stale)
	um.Error = err.Error()
	if werr := writeJSON(w, []unmountedStatus{um}); werr != nil {
		return werr
	}
	return err
}

// readAheadKB is the kernel's readahead for a mount of s: over S3 small,
// since every page fault in a memory map reads that much around it and a
// READ cannot be answered short (fs.S3ReadAheadKB); 0 is the default.
func readAheadKB(s instance.Settings) int {
	if isS3(s) {
		return lfs.S3ReadAheadKB
	}
	return 0
}
