package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/instance"
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
		b, _ := json.Marshal(p)
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

// waitDaemon waits for a stopping daemon, showing upload progress; it gives
// up after 30 s without a sign of life. Interrupted (Ctrl-C), it stops
// waiting and says how the daemon goes on.
func waitDaemon(ctx context.Context, w io.Writer, dirs instance.Dirs, name string, st mountState, force bool) error {
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
			var p cache.Pending
			if json.Unmarshal(b, &p) == nil && (p.Objects != last.Objects || p.Bytes != last.Bytes || !shown) {
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
	if shown {
		s, _ := dirs.Load(name)
		if left, _ := cache.ScanUploads(s.UploadDir()); left.Objects > 0 {
			fmt.Fprintf(w, "%s stay staged; they upload at the next start (lamina status shows them)\n", describePending(left))
		}
	}
	return nil
}

// printStagedUploads shows, without a mount, what waits in the upload
// queue of an S3 instance.
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
	if cache.QueueOwned(s.UploadDir()) {
		fmt.Fprintf(w, "uploads: %s; a stopping mount daemon is uploading them\n", describePending(p))
		return
	}
	fmt.Fprintf(w, "uploads: %s; the next mount, save or get uploads them\n", describePending(p))
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
		rows = append(rows, []string{"uploads", fmt.Sprintf("%s (%d done since the mount)", v, p.Uploaded)})
	}
	if ci := st.DiskCache; ci != nil {
		ratio := "-"
		if n := ci.Hits + ci.Misses; n > 0 {
			ratio = fmt.Sprintf("%.1f%%", 100*float64(ci.Hits)/float64(n))
		}
		rows = append(rows, []string{"disk cache", fmt.Sprintf("%s of %s (%d blocks; hit ratio %s; %s fetched)", humanBytes(ci.Used), humanBytes(ci.Limit), ci.Blocks, ratio, humanBytes(ci.Fetched))})
	}
	return rows
}
