package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/stage"
	"github.com/lamina-bio/lamina/storage"
)

// A close whose commit failed keeps its bytes in the instance's staging
// folder, and a mount of the instance commits them (retries, then the next
// mount's Recover). Once another instance has taken the storage over, no
// mount of this one may: the bytes stay staged for good, and the way out
// is to save them into the instance that owns the storage now. What
// lamina says of them must then name them, not promise a next mount.

// stagingDir is the staging folder of s's mounts (mountWrites).
func stagingDir(s instance.Settings) string { return s.StagingDir() }

// shellArg quotes v for a shell when it needs it.
func shellArg(v string) string {
	if v == "" || strings.ContainsFunc(v, func(r rune) bool {
		return !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:@=,+", r)
	}) {
		return shellQuote(v) // track.go
	}
	return v
}

// saveInto is the command that saves the staged file f into instance
// owner, with the mode and mtime its commit would have given it (the
// staging file is 0600, and a save's mtime is its own time), then removes
// the staged bytes, which ends what status, umount and mount say of them.
func saveInto(owner string, f stage.StagedFile) string {
	attrs := fmt.Sprintf(" --mode %04o", f.Mode&0o7777)
	if !f.Mtime.IsZero() {
		attrs += " --mtime " + f.Mtime.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("lamina --instance %s save %s --key %s%s && rm %s", shellArg(owner), shellArg(f.Path), shellArg(f.Key), attrs, shellArg(f.Path))
}

// stagedTakenOver says what becomes of the n staged files (files lists
// them, or the first of them) of instance s whose storage instance owner
// took over: no mount of s commits them, lamina keeps them where they
// are, and each line after the first is the command that saves one into
// owner.
func stagedTakenOver(s instance.Settings, owner string, files []stage.StagedFile, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s not committed: instance %s took the storage over, so no mount of %s commits %s. "+
		"%s kept in %s (lamina does not delete them); save each into %s where %s is set up, then remove it, as this does (what is removed is no longer listed):",
		plural(n, "staged file"), owner, s.Name, them(n), bytesAre(n), stagingDir(s), owner, owner)
	for _, f := range files {
		fmt.Fprintf(&b, "\n  %s", saveInto(owner, f))
		if !f.Closed {
			b.WriteString("   # open when its daemon stopped: what was written of it")
		}
		if f.Hole > 0 {
			// An append staged only the version's end (stage.StagedFile.Hole).
			fmt.Fprintf(&b, "\n     # first put back its first %d bytes, zeros in %s: they are those of %s version %d", f.Hole, shellArg(f.Path), shellArg(f.Key), f.Base)
		}
	}
	if n > len(files) {
		fmt.Fprintf(&b, "\n  … and %d more: `lamina --instance %s status` lists them all once unmounted", n-len(files), shellArg(s.Name))
	}
	return b.String()
}

func bytesAre(n int) string {
	if n == 1 {
		return "Its bytes are"
	}
	return "Their bytes are"
}

func them(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// stagedOf lists what the staging folder of s, not mounted, keeps that
// no commit holds, with the closes committed lazily whose version the
// catalog lost with its daemon (kill -9): the next mount commits them.
// The catalog file is read only when the folder has such a record, and
// not waited for long (a stopped daemon holds it).
func stagedOf(ctx context.Context, s instance.Settings) ([]stage.StagedFile, error) {
	return stage.StagedSince(stagingDir(s), func() (uint64, error) {
		if usesPostgres(s) {
			return math.MaxUint64, nil // no lazy commit
		}
		b, err := catalog.OpenBolt(s.Catalog, catalog.BoltOptions{Existing: true, Timeout: 2 * time.Second})
		if err != nil {
			return 0, err
		}
		defer b.Close()
		return b.LazyCommitted(ctx)
	})
}

// stagedNotCommitted says what the staging folder of instance s, not
// mounted, keeps that no commit holds, and what becomes of it: "" when
// it keeps nothing. Whether another instance took the storage over is
// read from it (a bounded wait: status must not hang on a server away).
func stagedNotCommitted(ctx context.Context, s instance.Settings) string {
	note := stagedNotCommittedOnly(ctx, s)
	a, err := s.AfterTakeOver()
	if err != nil {
		return strings.TrimSpace(note + "\n" + fmt.Sprintf("versions committed after a take-over: %v", err))
	}
	if an := afterTakeOverNote(s, a); an != "" {
		return strings.TrimSpace(note + "\n" + an)
	}
	return note
}

func stagedNotCommittedOnly(ctx context.Context, s instance.Settings) string {
	files, err := stagedOf(ctx, s)
	if err != nil {
		return fmt.Sprintf("staged files: %v", err)
	}
	if len(files) == 0 {
		return ""
	}
	o, ok, err := storageTakenBy(ctx, s)
	if err == nil && ok {
		return stagedTakenOver(s, o.Name, files, len(files))
	}
	return stagedNote(stagingDir(s), files, err)
}

// stagedNote says what the next mount does with each of files, kept in
// the staging folder dir: a file open when its daemon stopped goes under
// lost+found/, the others are committed. ownerErr is the storage's
// failure to say whether it is still this instance's: the note then says
// the same, under that condition. It once said "the next mount commits
// them" of every file when the storage did not answer, an open one too.
func stagedNote(dir string, files []stage.StagedFile, ownerErr error) string {
	var failed, lost, closed, open []string
	for _, f := range files {
		switch {
		case f.Failed:
			failed = append(failed, f.Key)
		case f.Lost:
			if !slices.Contains(lost, f.Key) { // closed more than once
				lost = append(lost, f.Key)
			}
		case f.Closed:
			closed = append(closed, f.Key)
		default:
			open = append(open, f.Key)
		}
	}
	var parts []string
	if len(failed) > 0 {
		parts = append(parts, fmt.Sprintf("%s whose commit failed (%s): the next mount commits them", plural(len(failed), "file"), strings.Join(failed, ", ")))
	}
	if len(lost) > 0 {
		parts = append(parts, fmt.Sprintf("%s closed, not yet committed when the daemon stopped (%s): the next mount commits %s", plural(len(lost), "file"), strings.Join(lost, ", "), them(len(lost))))
	}
	if len(closed) > 0 {
		// A journal record says closed from the start of a commit (a
		// close, a dup's, an fsync) until the handle's release: the
		// commit may have landed, or been lost with a lazy transaction.
		parts = append(parts, fmt.Sprintf("%s closed, not yet committed when the daemon stopped, as far as the staging folder tells (%s): the next mount commits what the catalog does not hold", plural(len(closed), "file"), strings.Join(closed, ", ")))
	}
	if len(open) > 0 {
		parts = append(parts, fmt.Sprintf("%s open when the daemon stopped (%s): the next mount keeps what was written under %s/", plural(len(open), "file"), strings.Join(open, ", "), stage.LostAndFound))
	}
	// An append reads the bytes it was appended to from the version it
	// was opened on: if that was deleted for good and gc deleted them
	// since, nothing can commit the file whole.
	parts = append(parts, headGoneNote)
	if ownerErr != nil {
		var keys []string
		for _, f := range files {
			keys = append(keys, fmt.Sprintf("%s (%s)", f.Key, f.Path))
		}
		return fmt.Sprintf("%s not committed (%s); the storage did not answer whether it is still this instance's (%v). If it is: %s. If another instance took it over, no mount of this one commits them: status says how to save them once the storage answers",
			plural(len(files), "staged file"), strings.Join(keys, ", "), ownerErr, strings.Join(parts, "; "))
	}
	return fmt.Sprintf("staged in %s: %s", dir, strings.Join(parts, "; "))
}

// headGoneNote is what becomes of a staged append whose first bytes gc
// deleted (stage.Recover).
const headGoneNote = "a file appended to whose earlier bytes gc has deleted since (its version deleted for good) goes under " + stage.LostAndFound + "/ with only the bytes written to it, its description naming the range lost"

// storageTakenBy reads the owner of s's storage: ok when another instance
// took it over.
func storageTakenBy(ctx context.Context, s instance.Settings) (instance.Owner, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var b storage.Backend
	if isS3(s) {
		s3, err := openS3(ctx, s, false)
		if err != nil {
			return instance.Owner{}, false, err
		}
		b = s3
	} else {
		l, err := storage.OpenLocal(s.Storage)
		if err != nil {
			return instance.Owner{}, false, err
		}
		b = l
	}
	o, found, err := instance.New(s, nil, b, nil).StorageOwner(ctx)
	if err != nil || !found || o.ID == s.ID {
		return o, false, err
	}
	return o, true, nil
}

// withStagedTakenOver adds to err, a refusal of s's storage, what the
// staging folder keeps that no mount of s will commit now that another
// instance owns the storage, and how to save it there.
func withStagedTakenOver(ctx context.Context, s instance.Settings, err error) error {
	if !errors.Is(err, instance.ErrStorageTaken) {
		return err
	}
	files, serr := stagedOf(ctx, s)
	if serr != nil || len(files) == 0 {
		return err
	}
	o, taken, oerr := storageTakenBy(ctx, s)
	if oerr != nil || !taken {
		return err
	}
	return fmt.Errorf("%w\n%s", err, stagedTakenOver(s, o.Name, files, len(files)))
}

// unmountedStatus is `lamina status --format json` of an instance that is
// not mounted but keeps something: staged bytes no commit holds (and who
// took the storage over, when no mount of it may commit them), uploads
// waiting (S3), mounts whose daemon died. It printed [] and lost them.
type unmountedStatus struct {
	Instance    string             `json:"instance"`
	Mounted     bool               `json:"mounted"` // false
	Stale       []string           `json:"stale,omitempty"`
	Staged      []stage.StagedFile `json:"staged,omitempty"`
	StagedError string             `json:"staged_error,omitempty"` // the staging folder could not be read
	TakenOver   string             `json:"taken_over_by,omitempty"`
	OwnerError  string             `json:"owner_error,omitempty"` // the storage did not say who owns it
	Uploads     *cache.Pending     `json:"uploads,omitempty"`
	// AfterTakeOver: versions committed after a take-over, in no usable
	// catalog (until status --forget-take-over).
	AfterTakeOver *instance.AfterTakeOver `json:"after_take_over,omitempty"`
	Error         string                  `json:"error,omitempty"` // a mount whose daemon died or is stopped
	// LastStop: what the last daemon could not commit (its stop gave it
	// up, or it was killed while the catalog's commit failed), as the text
	// output says it.
	LastStop string `json:"last_stop,omitempty"`
}

// unmountedOf is the unmountedStatus of instance s, not mounted, with the
// stale mounts stale: ok when it keeps anything.
func unmountedOf(ctx context.Context, dirs instance.Dirs, s instance.Settings, stale []string) (unmountedStatus, bool) {
	um := unmountedStatus{Instance: s.Name, Stale: stale, LastStop: lostChangesNote(dirs, s.Name)}
	files, err := stagedOf(ctx, s)
	if err != nil {
		um.StagedError = err.Error()
	}
	um.Staged = files
	var p cache.Pending
	if isS3(s) {
		if p, err = cache.ScanUploads(s.UploadDir()); err == nil && p.Objects > 0 {
			um.Uploads = &p
		}
	}
	if len(files) > 0 || um.Uploads != nil {
		if o, ok, err := storageTakenBy(ctx, s); err != nil {
			um.OwnerError = err.Error()
		} else if ok {
			um.TakenOver = o.Name
			if um.Uploads != nil {
				// What no process of s uploads any more is held, as a
				// mount's entry counts it, not an upload to come.
				holdAfterTakeOver(um.Uploads, o)
			}
		}
	}
	um.AfterTakeOver, _ = s.AfterTakeOver()
	return um, len(stale) > 0 || len(files) > 0 || um.StagedError != "" || um.Uploads != nil || um.AfterTakeOver != nil || um.LastStop != ""
}

// afterTakeOverNote says what became of the versions a mount of s
// committed on S3 after another instance took the storage over, before the
// mount saw it (it reads the owner every ownerCheckEvery): empty when
// there are none.
func afterTakeOverNote(s instance.Settings, a *instance.AfterTakeOver) string {
	if a == nil || len(a.Versions) == 0 {
		return ""
	}
	return fmt.Sprintf("%s committed after instance %s took the storage over, not in its catalog: %s — "+
		"its gc deletes their data once its grace is past; read them through the (read-only) mount of %s or copy them out, "+
		"and `lamina --instance %s save …` them; then `lamina --instance %s status --forget-take-over`",
		plural(len(a.Versions), "version"), a.Owner, strings.Join(a.Versions, ", "),
		s.Name, shellArg(a.Owner), shellArg(s.Name))
}
