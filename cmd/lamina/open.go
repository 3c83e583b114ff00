package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
)

// currentSettings returns the user's folders and the settings of the
// instance the flags and environment select.
func currentSettings(c *cli.Context) (instance.Dirs, instance.Settings, error) {
	dirs, err := instance.UserDirs()
	if err != nil {
		return dirs, instance.Settings{}, err
	}
	s, err := dirs.Current(c.String("instance"))
	if err == nil {
		moveFromCache(c.App.ErrWriter, dirs, s) // layout.go
	}
	return dirs, s, err
}

// openInstance opens the instance the flags and environment select.
func openInstance(c *cli.Context) (*instance.Instance, error) {
	_, s, err := currentSettings(c)
	if err != nil {
		return nil, err
	}
	uses := !catalogOnly(c)
	in, rem, err := openSettingsRemote(c.Context, s, uses, false)
	if err != nil {
		return nil, err
	}
	if uses {
		// An instance whose storage another took over must not write to
		// it; the packs its queue holds still go (uploads.go).
		if err := in.CheckStorage(c.Context, false); err != nil {
			err = takenOverUploads(c.Context, s, rem, err, 10*time.Minute, c.App.ErrWriter, c.String("format") == "json")
			in.Close()
			return nil, err
		}
	}
	if in.Log == nil {
		in.Log = cliLog(c.App.ErrWriter) // clilog.go
	}
	if in.Store != nil {
		in.Store.SetLogger(in.Log) // a damaged index.db set aside, say
	}
	// A command a tracked process runs works for its run: what it saves
	// is the run's output, what it gets its input (run.go).
	in.Run = trackedRun(c.Context, in.Catalog)
	if isTerminal(c.App.ErrWriter) && os.Getenv("LAMINA_NO_PROGRESS") == "" {
		in.IndexProgress = indexProgress(c.App.ErrWriter)
	}
	badMarker(c.App.ErrWriter) // marker.go
	return in, nil
}

// indexProgress counts, on a terminal, the packs a rebuild of the dedup
// index has read (instance.Save), when there are enough to take a while.
func indexProgress(w io.Writer) func(done, total int) {
	return func(done, total int) {
		if total < 256 {
			return
		}
		end := ""
		if done == total {
			end = "\n"
		}
		fmt.Fprintf(w, "\rlamina: rebuilding the dedup index (index.db) from the packs in storage: %d of %d%s", done, total, end)
	}
}

// catalogOnlyCommands read and write only the catalog: they do not ask an
// S3 bucket anything at open, so they work while its server is away. The
// others check it first, and fail at once rather than after the retry
// budget of their first storage call.
var catalogOnlyCommands = map[string]bool{
	"ls": true, "show": true, "search": true, "lineage": true, "runs": true, "delete": true, "restore": true, "info": true,
	"label": true, "annotate": true, "feature": true, "schema": true, "collection": true,
}

// readOnlyOntologyCommands are the subcommands of `lamina ontology` that
// only read the registry and indexes. They do not ask the bucket first
// either: with the storage away they answer from the copies this machine
// cached (the registry it read last, the index files it used;
// instance/ontologies.go), as `ls --term` does. import and default write
// the registry, so they check the bucket.
var readOnlyOntologyCommands = map[string]bool{
	"sources": true, "search": true, "validate": true, "standardize": true, "inspect": true, "show": true,
}

// catalogOnly reports whether c is (under) a catalog-only command: one of
// catalogOnlyCommands, a read-only ontology subcommand, or curate without
// --key (it then only reads the table, the catalog and the ontologies;
// with --key it saves to storage).
func catalogOnly(c *cli.Context) bool {
	// The command path, top first.
	var names []string
	for _, l := range c.Lineage() { // this command first, then its parents
		if l.Command != nil && l.Command.Name != c.App.Name { // the app's own
			names = append([]string{l.Command.Name}, names...)
		}
	}
	switch {
	case len(names) == 0:
		return false
	case names[0] == "ontology":
		return len(names) > 1 && readOnlyOntologyCommands[names[1]]
	case names[0] == "curate":
		return !c.IsSet("key")
	}
	return catalogOnlyCommands[names[0]]
}

// openSettings wires the concrete catalog and backend for s; check asks an
// S3 bucket to answer before anything else (init, connect, and every
// command but the catalogOnly ones). fresh is set by init, which makes the
// catalog: for every other command an empty or missing bbolt file is a
// damaged catalog, not a new one.
func openSettings(ctx context.Context, s instance.Settings, check, fresh bool) (*instance.Instance, error) {
	in, _, err := openSettingsRemote(ctx, s, check, fresh)
	if err == nil {
		in.Store.SetLogger(cliLog(os.Stderr))
	}
	return in, err
}

// openSettingsRemote is openSettings, returning the S3 machinery too (nil
// for local storage).
func openSettingsRemote(ctx context.Context, s instance.Settings, check, fresh bool) (*instance.Instance, *remote, error) {
	// The CLI waits for its own uploads (a save returns once S3 has the
	// data); a mount daemon queues them (mount.go). ctx: Ctrl-C stops the
	// bucket check (a server that accepts and never answers held it).
	b, rem, err := openBackend(ctx, s, backendOptions{syncUpload: true, check: check})
	if err != nil {
		return nil, nil, err
	}
	cat, err := openCatalog(s, fresh)
	if err != nil {
		rem.close()
		return nil, nil, err
	}
	store, err := cache.NewStore(b, filepath.Join(s.DataDir, "index.db"), cache.DefaultParams)
	if err != nil {
		rem.close()
		cat.Close()
		return nil, nil, err
	}
	in := instance.New(s, cat, b, store)
	if rem != nil {
		rem.nameLost(in)
		store.SetPackWait(packWait()) // backend.go
		in.OnClose(func() error {
			// Uploads an earlier run left behind go now, while the CLI
			// has the queue open; what cannot go stays staged. A server
			// that is away must not hold `lamina ls` for long.
			if p := rem.up.Pending(); check && p.Objects > 0 && !rem.quiet { // not for a command that only reads the catalog
				fmt.Fprintf(os.Stderr, "lamina: uploading %s\n", describePending(p))
				if err := rem.drain(context.Background(), 15*time.Second, nil); err != nil {
					fmt.Fprintf(os.Stderr, "lamina: %s stay staged; they upload at the next start\n", describePending(rem.up.Pending()))
				}
			}
			rem.close()
			return nil
		})
	}
	return in, rem, nil
}

// openCatalog talks to the instance's mount daemon when one is up (it holds
// the catalog file) and opens the catalog file itself otherwise; a
// PostgreSQL catalog it opens directly.
func openCatalog(s instance.Settings, fresh bool) (catalog.Catalog, error) {
	if usesPostgres(s) {
		// The database serves every process itself: no daemon in between
		// (postgres.go). Only init (fresh) sets up an empty one.
		if fresh {
			return dialPostgres(context.Background(), s.Catalog, postgres.Options{})
		}
		return openPostgres(context.Background(), s, nil)
	}
	if dirs, err := instance.UserDirs(); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if c, err := dialDaemon(ctx, dirs, s); err == nil { // build.go
			return c, nil
		}
		if st, err := readState(dirs, s.Name); err == nil && stoppedState(processState(st.PID)) {
			// It holds the catalog and answers nothing: waiting for the
			// lock would take the whole timeout (mount.go, status).
			return nil, fmt.Errorf("the mount daemon of instance %q (pid %d, mounted at %s) is stopped (SIGSTOP, Ctrl-Z or a debugger) and holds the catalog: `kill -CONT %d` resumes it, `lamina umount --force %s` stops it", s.Name, st.PID, st.Mountpoint, st.PID, st.Mountpoint)
		}
	}
	return catalog.OpenBolt(s.Catalog, catalog.BoltOptions{Existing: !fresh})
}
