package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/storage/retry"
)

// The mount daemon of an S3 instance, when asked to stop, unmounts and then
// uploads what is still queued before it exits, writing its progress to
// uploads.json in its runtime folder; `lamina umount` shows that progress
// while it waits. `lamina umount --force` leaves force-stop there first:
// the daemon then exits at once and the uploads stay staged.

func uploadsPath(dirs instance.Dirs, name string) string {
	return filepath.Join(dirs.RuntimeDir(name), "uploads.json")
}

func forceStopPath(dirs instance.Dirs, name string) string {
	return filepath.Join(dirs.RuntimeDir(name), "force-stop")
}

// drainUploads runs in the daemon after the unmount.
func drainUploads(rem *remote, dirs instance.Dirs, s instance.Settings, log *slog.Logger) {
	force := forceStopPath(dirs, s.Name)
	defer os.Remove(force)
	if rem == nil {
		return
	}
	prog := uploadsPath(dirs, s.Name)
	defer os.Remove(prog)
	defer func() {
		if p := rem.up.Pending(); len(p.Held) > 0 {
			o, _ := rem.owner.Taken()
			log.Warn(keptAfterTakeOver(s, o.Name, p.Held))
		}
	}()
	p := rem.up.Pending()
	if p.Objects == 0 {
		return
	}
	log.Info("uploading what is queued before stopping", "objects", p.Objects, "bytes", p.Bytes)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logged cache.Pending
	var loggedAt time.Time
	err := rem.drain(ctx, 10*time.Minute, func(p cache.Pending) {
		if _, err := os.Stat(force); err == nil {
			cancel()
			return
		}
		// The storage's health beside the queue, current (a probe that
		// has not ended in 100 ms is read at the next call, a second on):
		// umount says at once that the uploads wait for a server that is
		// not answering.
		hctx, hcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		h := rem.health(hctx)
		hcancel()
		b, _ := json.Marshal(drainProgress{Pending: p, Storage: &h})
		os.WriteFile(prog+".tmp", b, 0o600)
		os.Rename(prog+".tmp", prog)
		if p.Objects != logged.Objects || time.Since(loggedAt) > 30*time.Second { // not a line a second
			logged, loggedAt = p, time.Now()
			log.Info("uploading", "objects_left", p.Objects, "bytes_left", p.Bytes, "failures", p.Failures)
		}
	})
	if err != nil {
		p := rem.up.Pending()
		log.Warn("stopping with uploads pending; they stay staged and resume at the next start", "objects", p.Objects, "bytes", p.Bytes, "dir", s.UploadDir())
		return
	}
	log.Info("every upload done")
}

// drainProgress is what a stopping daemon writes to uploads.json: its
// queue and the storage's health.
type drainProgress struct {
	cache.Pending
	Storage *retry.Health `json:"storage,omitempty"`
}

// storageAwayNote says that the uploads p wait for a storage that is not
// answering (h), what umount waits for, and what --force of dir leaves.
func storageAwayNote(h retry.Health, p cache.Pending, dir string) string {
	return fmt.Sprintf("the storage is not answering since %s (%s): waiting for it to upload %s (%s); Ctrl-C stops waiting (the daemon goes on trying), `lamina umount --force %s` stops now and leaves %s pending, kept staged for the next start",
		h.Since.Local().Format(time.TimeOnly), h.LastError, plural(p.Objects, "object"), humanBytes(p.Bytes), shellArg(dir), plural(p.Objects, "upload"))
}

// waitDaemon waits for a stopping daemon, showing upload progress; it gives
// up after 30 s without a sign of life. Interrupted (Ctrl-C), it stops
// waiting and says how the daemon goes on.
//
// away is true when umount already said the storage is not answering
// (storageAwayNote); it says so again only once it answered meanwhile.
func waitDaemon(ctx context.Context, w io.Writer, dirs instance.Dirs, name string, st mountState, force, away bool) error {
	start, lastSign := time.Now(), time.Now()
	var last cache.Pending
	shown, said := false, false
	for processAlive(st.PID) {
		if ctx.Err() != nil {
			if !shown {
				return fmt.Errorf("interrupted: the daemon (pid %d) goes on stopping (and uploading what is queued) in the background; `lamina status` shows it; `lamina umount --force %s` stops it now, leaving queued uploads staged for the next start", st.PID, st.Mountpoint)
			}
			return fmt.Errorf("stopped waiting: the mount is gone, and its daemon (pid %d) goes on uploading in the background until done (or 10 min without progress); `lamina umount --force %s` stops it now, leaving the uploads staged for the next start", st.PID, st.Mountpoint)
		}
		if b, err := os.ReadFile(uploadsPath(dirs, name)); err == nil {
			var dp drainProgress
			err := json.Unmarshal(b, &dp)
			p := dp.Pending
			if h := dp.Storage; err == nil && h != nil && !force && p.Objects > 0 && h.Failing != away {
				if h.Failing {
					fmt.Fprintln(w, storageAwayNote(*h, p, st.Mountpoint))
				} else {
					fmt.Fprintln(w, "the storage answers again; uploading")
				}
				away = h.Failing
			}
			if err == nil && (p.Objects != last.Objects || p.Bytes != last.Bytes || !shown) {
				if !shown && !force {
					fmt.Fprintln(w, "waiting for the uploads to S3 (Ctrl-C stops waiting; `lamina umount --force` leaves them staged)")
				}
				last, shown, lastSign = p, true, time.Now()
				fmt.Fprintf(w, "waiting for uploads: %s\n", describePending(p))
			}
			if info, err := os.Stat(uploadsPath(dirs, name)); err == nil && time.Since(info.ModTime()) < 5*time.Second {
				lastSign = time.Now()
			}
		}
		if !said && !shown && time.Since(start) > 300*time.Millisecond {
			// A daemon busy (a commit, a sync) before its uploads shows
			// nothing for a while: say what umount waits for.
			fmt.Fprintln(w, "waiting for the daemon to stop… (Ctrl-C stops waiting; it goes on by itself)")
			said = true
		}
		if time.Since(lastSign) > 30*time.Second {
			return fmt.Errorf("the mount daemon (pid %d) did not stop within 30 s; see %s", st.PID, st.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s, err := dirs.Load(name)
	if err != nil || !isS3(s) {
		return nil
	}
	if left, _ := cache.ScanUploads(s.UploadDir()); left.Objects > 0 {
		// After a take-over what is left is what the daemon held (the old
		// catalog's records): named, whether or not it uploaded first.
		if o, taken, err := storageTakenBy(ctx, s); err == nil && taken {
			if !force { // umount --force shows the queue itself (printStagedUploads)
				fmt.Fprintln(w, queueTakenOver(s, o.Name, left.Items))
			}
		} else if shown {
			fmt.Fprintf(w, "%s stay staged; they upload at the next start (lamina status shows them)\n", describePending(left))
		}
	}
	return nil
}

// printStagedUploads shows, without a mount, what waits in the upload
// queue of an S3 instance; when another instance has taken the storage
// over (read from it, bounded), what of it still goes and what never does.
func printStagedUploads(w io.Writer, s instance.Settings) {
	if !isS3(s) {
		return
	}
	lost, _ := s.Lost()
	if lost != nil {
		fmt.Fprintf(w, "lost uploads: %s\n", describeLost(*lost))
	}
	p, err := cache.ScanUploads(s.UploadDir())
	if err != nil {
		fmt.Fprintf(w, "uploads: %v\n", err)
		return
	}
	if p.Objects == 0 {
		if lost != nil {
			fmt.Fprintln(w, "uploads: none pending besides the lost ones above")
			return
		}
		fmt.Fprintln(w, "uploads: none pending")
		return
	}
	if o, taken, err := storageTakenBy(context.Background(), s); err == nil && taken {
		fmt.Fprintf(w, "uploads: %s\n", queueTakenOver(s, o.Name, p.Items))
		return
	}
	if cache.QueueOwned(s.UploadDir()) {
		fmt.Fprintf(w, "uploads: %s; a stopping mount daemon is uploading them%s\n", describePending(p), stoppingStorageNote(s))
		return
	}
	fmt.Fprintf(w, "uploads: %s; the next mount, save or get uploads them\n", describePending(p))
}

// stoppingStorageNote says, from what a stopping daemon wrote of its
// uploads (drainProgress), that the storage they wait for is not
// answering; "" when it answers or nothing says.
func stoppingStorageNote(s instance.Settings) string {
	dirs, err := instance.UserDirs()
	if err != nil {
		return ""
	}
	b, err := os.ReadFile(uploadsPath(dirs, s.Name))
	var dp drainProgress
	if err != nil || json.Unmarshal(b, &dp) != nil || dp.Storage == nil || !dp.Storage.Failing {
		return ""
	}
	return fmt.Sprintf(", but the storage is not answering since %s (%s)", dp.Storage.Since.Local().Format(time.TimeOnly), dp.Storage.LastError)
}

// queueTakenOver says what becomes of the staged objects items of
// instance s, whose storage instance owner took over: the packs still go
// (any command of s that uses the storage uploads them before it is
// refused), the rest (the old catalog's records) never does.
func queueTakenOver(s instance.Settings, owner string, items []cache.PendingItem) string {
	var packs, kept []cache.PendingItem
	var packBytes int64
	for _, it := range items {
		if instance.AddableAfterTakeOver(it.Name) {
			packs = append(packs, it)
			packBytes += it.Size
		} else {
			kept = append(kept, it)
		}
	}
	var parts []string
	if len(packs) > 0 {
		parts = append(parts, fmt.Sprintf("%s (%s) of this machine %s for upload, and instance %s took the storage over: %s still %s (immutable; %s's catalog may name %s, imported from an export made while %s here): `lamina --instance %s cache push` uploads %s",
			plural(len(packs), "pack"), humanBytes(packBytes), verb(len(packs), "waits", "wait"), owner, them(len(packs)), verb(len(packs), "goes", "go"),
			owner, them(len(packs)), verb(len(packs), "it waited", "they waited"), shellArg(s.Name), them(len(packs))))
	}
	if len(kept) > 0 {
		parts = append(parts, keptAfterTakeOver(s, owner, kept))
	}
	return strings.Join(parts, "; ")
}

// holdAfterTakeOver moves what of p (a ScanUploads, with its Items) the
// queue no longer uploads now that instance o owns the storage (all but
// packs and ontology objects named by digest: instance.AddableAfterTakeOver)
// from Objects and Bytes to Held, as a mount's queue counts them
// (queueAllow). Not mounted, status counted the old catalog's records
// as uploads to come, and cache push said it was uploading them.
func holdAfterTakeOver(p *cache.Pending, o instance.Owner) {
	var goes []cache.PendingItem
	for _, it := range p.Items {
		if instance.AddableAfterTakeOver(it.Name) {
			goes = append(goes, it)
			continue
		}
		p.Held = append(p.Held, it)
		p.HeldBytes += it.Size
		p.Objects--
		p.Bytes -= it.Size
	}
	p.Items = goes
	if len(p.Held) > 0 && p.HeldWhy == "" {
		p.HeldWhy = fmt.Sprintf("%v: %v: instance %q took it over on %s; this one may only read it",
			cache.ErrHold, instance.ErrStorageTaken, o.Name, o.Since.Format(time.DateOnly))
	}
}

// keptAfterTakeOver names the staged objects of instance s that are not
// uploaded now that owner has the storage, and where they are kept.
func keptAfterTakeOver(s instance.Settings, owner string, kept []cache.PendingItem) string {
	var names []string
	for i, it := range kept {
		if i == 5 {
			names = append(names, fmt.Sprintf("… %d more", len(kept)-5))
			break
		}
		names = append(names, it.Name)
	}
	return fmt.Sprintf("%s of instance %s's catalog (%s) kept in %s, not uploaded: instance %s owns the storage, and lamina writes no record of %s there (nor deletes them); the versions they record are in %s's catalog, and an export of it (`lamina export-catalog`) carries them to %s",
		plural(len(kept), "record object"), s.Name, strings.Join(names, ", "), s.UploadDir(), owner, s.Name, s.Name, owner)
}

// takenOverUploads is for a command of instance s refused because
// another instance owns its storage (err): it uploads what of the queue
// may still go (packs: the new owner's catalog may name them), for at
// most limit, and says in the error returned what went and what is kept.
// say, if not nil (a CLI command's stderr), hears first what it uploads,
// and a bar shows how far unless quiet (--format json): a refused get or
// save waited up to limit without a word.
func takenOverUploads(ctx context.Context, s instance.Settings, rem *remote, err error, limit time.Duration, say io.Writer, quiet bool) error {
	if rem == nil || !errors.Is(err, instance.ErrStorageTaken) {
		return err
	}
	owner := "the new owner"
	if o, ok := rem.owner.Taken(); ok {
		owner = o.Name
	} else if o, ok, oerr := storageTakenBy(ctx, s); oerr == nil && ok {
		owner = o.Name
	}
	p := rem.up.Pending()
	if p.Objects == 0 && len(p.Held) == 0 {
		return err
	}
	rem.quiet = true // the close says nothing more of the queue
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var progress func(cache.Pending)
	if scan, serr := cache.ScanUploads(s.UploadDir()); serr == nil && say != nil {
		holdAfterTakeOver(&scan, instance.Owner{Name: owner})
		if scan.Objects > 0 {
			fmt.Fprintf(say, "lamina: instance %s took the storage over; uploading first the %s (%s) this machine queued (Ctrl-C stops; `lamina --instance %s cache push` uploads %s later)…\n",
				owner, plural(scan.Objects, "pack"), humanBytes(scan.Bytes), shellArg(s.Name), them(scan.Objects))
			bar := newProgress("uploading queued packs", scan.Bytes, quiet)
			defer bar.Done()
			if add := bar.Func(); add != nil {
				var shown int64
				progress = func(p cache.Pending) {
					// p.Bytes counts the records too until the queue holds them.
					if done := min(max(scan.Bytes-p.Bytes, 0), scan.Bytes); done > shown {
						add(done - shown)
						shown = done
					}
				}
			}
		}
	}
	rem.drain(ctx, 30*time.Second, progress)
	p = rem.up.Pending()
	var says []string
	if p.Uploaded > 0 {
		says = append(says, fmt.Sprintf("uploaded %s this machine had queued (immutable: instance %s's catalog may name %s)", plural(int(p.Uploaded), "pack"), owner, them(int(p.Uploaded))))
	}
	if p.Objects > 0 {
		says = append(says, fmt.Sprintf("%s; `lamina --instance %s cache push` tries again", describePending(p), shellArg(s.Name)))
	}
	if len(p.Held) > 0 {
		says = append(says, keptAfterTakeOver(s, owner, p.Held))
	}
	return fmt.Errorf("%w\n%s", err, strings.Join(says, "\n"))
}

// describeLost says what the record of lost uploads holds and what to do.
func describeLost(l instance.LostUploads) string {
	vs := "the versions that use them (not known yet) cannot be read"
	if len(l.Versions) > 0 {
		vs = fmt.Sprintf("%s cannot be read: %s", plural(len(l.Versions), "version"), strings.Join(l.Versions, ", "))
	}
	return fmt.Sprintf("%s staged for S3 were removed before they reached it (since %s; objects %s): %s; save their data again, or `lamina delete` them, then `lamina status --forget-lost` stops this note",
		plural(len(l.Objects), "object"), l.Since.Local().Format(time.DateTime), strings.Join(l.Objects, ", "), vs)
}

// remoteRows are the S3 lines of `lamina status` for a mount.
func remoteRows(st mountStatus) [][]string {
	var rows [][]string
	if h := st.Storage; h != nil {
		v := "answering"
		if h.Failing {
			v = fmt.Sprintf("not answering since %s (%s): reads of what the cache lacks fail with EIO; writes queue", h.Since.Local().Format(time.TimeOnly), h.LastError)
		}
		rows = append(rows, []string{"storage", v})
	}
	if l := st.LostUploads; l != nil {
		rows = append(rows, []string{"lost uploads", describeLost(*l)})
	}
	if p := st.Uploads; p != nil {
		v := "none pending"
		if st.LostUploads != nil {
			v = "none pending besides the lost ones above"
		}
		if p.Objects > 0 {
			v = describePending(*p) + fmt.Sprintf(", %d uploading", p.Uploading)
		}
		if len(p.Held) > 0 {
			v += fmt.Sprintf("; %d kept staged, not uploaded: %s", len(p.Held), strings.TrimPrefix(p.HeldWhy, cache.ErrHold.Error()+": "))
		}
		rows = append(rows, []string{"uploads", fmt.Sprintf("%s (%d done since the mount)", v, p.Uploaded)})
	}
	if ci := st.DiskCache; ci != nil {
		ratio := "-"
		if n := ci.Hits + ci.Misses; n > 0 {
			ratio = fmt.Sprintf("%.1f%%", 100*float64(ci.Hits)/float64(n))
		}
		rows = append(rows, []string{"disk cache", fmt.Sprintf("%s of %s (%d blocks; hit ratio %s; %s fetched)%s", humanBytes(ci.Used), humanBytes(ci.Limit), ci.Blocks, ratio, humanBytes(ci.Fetched), describeCacheDisk(*ci))})
	}
	return rows
}

// describeCacheDisk says, after the cache's figures, that its disk holds
// less than its limit and what could not be written: without it a cache
// whose disk was full showed "64.0 MiB of 9.3 GiB" and nothing else while
// every block it fetched was lost.
func describeCacheDisk(ci cache.CacheInfo) string {
	var s string
	if ci.DiskLimit > 0 && ci.DiskLimit < ci.Limit {
		s = fmt.Sprintf("; its disk holds only %s of it", humanBytes(ci.DiskLimit))
	}
	if ci.StoreFailed > 0 {
		what := "could not be written"
		if ci.DiskFull {
			what += " (disk full)"
		}
		s += fmt.Sprintf("; %d blocks %s, last: %s", ci.StoreFailed, what, ci.StoreError)
	}
	return s
}

// verb picks the singular or the plural form for n.
func verb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
