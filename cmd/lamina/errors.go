package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/storage"
)

// explain turns an error into the message a person reads: what went wrong
// and, where we know it, what to do.
func explain(err error) string {
	msg := err.Error()
	var blocked *instance.GCBlockedError
	switch {
	case errors.Is(err, syscall.ENOSPC) && strings.Contains(msg, "cache: store a block"):
		// The disk of the cache folder (a prefetch): gc frees nothing there.
		return msg + "\nThe disk of the local cache is full; the catalog was not changed. Free some space there, or make the cache smaller (`lamina cache limit SIZE`; `lamina cache clear` empties it)."
	case errors.Is(err, syscall.ENOSPC):
		return msg + "\nThe disk is full; the catalog was not changed. Free some space and try again (`lamina gc` removes stored data no version uses)."
	case errors.Is(err, syscall.EDQUOT):
		return msg + "\nThe disk quota is exceeded; the catalog was not changed."
	case errors.Is(err, catalog.ErrSchema):
		return msg
	case errors.As(err, &blocked) && errors.Is(err, cache.ErrPackMissing):
		// Saving the file again (the advice below) leaves gc stuck on the
		// old version: say what unblocks it. No command deletes one
		// version for good, only a whole artifact.
		key := blocked.Version.Key
		when := "once the data is uploaded"
		if local, ok := notInFolder(err); ok {
			when = "once the data is back in the storage folder " + local.Root + " (is it the instance's folder, its disk mounted?)"
		}
		return msg + fmt.Sprintf("\nThe data of that version is missing from storage, and gc reads the data list of every version (trashed ones too) before it deletes anything: run gc again %s. If it is lost, gc stays stopped until %s is deleted for good: get the versions of it you still need (`lamina get %s@vN`), then `lamina delete --permanent %s`, and save them again.", when, key, key, key)
	case errors.Is(err, cache.ErrPackMissing) || strings.Contains(msg, cache.ErrPackMissing.Error()+": "):
		// The text match: the error of a mount daemon (cache prefetch)
		// crosses its socket without this class.
		// The error names the version and the pack, and what may be
		// keeping the pack (cache.Store.SetPackWait).
		if local, ok := notInFolder(err); ok {
			// A storage folder: no workstation uploads into it.
			if errors.Is(local.Why, storage.ErrRootGone) {
				return msg + fmt.Sprintf("\nThe version reads again once the instance's storage folder is back at %s (its disk mounted, the folder moved back).", local.Root)
			}
			return msg + fmt.Sprintf("\nThe data of that version is not in the storage folder %s: is that folder the instance's, its disk mounted? If the data is lost, save the file again from another copy (a new version).", local.Root)
		}
		if strings.Contains(msg, ": storage folder ") && strings.Contains(msg, "is its disk mounted?") {
			// The same, from a mount daemon (text only).
			return msg + "\nThe version reads again once the instance's storage folder is back (its disk mounted, the folder moved back)."
		}
		return msg + "\nThe data of that version is missing from storage: it reads once the workstation that saved it has uploaded it; if it is lost, save the file again from another copy (a new version)."
	}
	return msg
}

// notInFolder returns the miss of a local storage folder that err is,
// if it is one (storage.NotInRootError): its advice names the folder,
// which no workstation uploads into.
func notInFolder(err error) (*storage.NotInRootError, bool) {
	var local *storage.NotInRootError
	ok := errors.As(err, &local)
	return local, ok
}

// unreadable makes err, an input file that cannot be read as a table
// (truncated, corrupt, empty), exit 2, as a damaged zarr store or an FCS
// file given to curate does: 1 means the data does not validate, and a
// script must tell the two apart. A file that is not there keeps exit 1,
// and an error with its own code keeps it.
func unreadable(err error) error {
	var coded interface{ ExitCode() int }
	if err == nil || errors.As(err, &coded) || errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return exitError{msg: err.Error(), code: 2}
}

// Exit codes (README, "Exit codes"): 0 success; 1 a failure; 2 bad
// input (usage); 3 status: not mounted; 4 not found; 126, 127 and a
// command's own code from lamina run.
const (
	exitFailure  = 1
	exitUsage    = 2
	exitNotFound = 4
)

// withExitCode is where an error without a code of its own gets one, by
// what it is rather than by the command that met it: input the command
// refuses (a bad key or prefix, a malformed name, dtype, value, condition
// or order, text that is not UTF-8) is a usage error, exit 2, wherever it
// was parsed; what the catalog does not have (a key, a version, a uid, a
// collection: catalog.ErrNotFound) is 4, so that a script tells "no such
// key" from a catalog that does not answer; anything else stays 1. An
// error that has a code keeps it. The error is kept whole (errors.Is
// still sees what it wraps).
func withExitCode(err error) error {
	var ec interface{ ExitCode() int }
	if err == nil || errors.As(err, &ec) {
		return err
	}
	if code := codeFor(err); code != exitFailure {
		return codedError{err: err, code: code}
	}
	return err
}

// codeFor is the exit code of err, by its code if it has one, else by
// what it is (withExitCode).
func codeFor(err error) int {
	var ec interface{ ExitCode() int }
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ec):
		return ec.ExitCode()
	case isBadInput(err):
		return exitUsage
	case errors.Is(err, catalog.ErrNotFound):
		return exitNotFound
	}
	return exitFailure
}

// isBadInput reports an error that refuses what was typed: ref.ErrBadKey
// (every key and prefix check wraps it), ref.ErrBadUID (text that cannot
// be a uid: `runs show qSGk`), catalog.ErrInvalid (names, dtypes, values,
// --where, --order) and ref.ErrNotUTF8 (a key, prefix, name or value that
// is not UTF-8, which every store refuses alike).
func isBadInput(err error) bool {
	return errors.Is(err, ref.ErrBadKey) || errors.Is(err, ref.ErrBadUID) || errors.Is(err, catalog.ErrInvalid) || errors.Is(err, ref.ErrNotUTF8)
}

// codedError is err with an exit code; the message a person reads is
// explain's.
type codedError struct {
	err  error
	code int
}

func (e codedError) Error() string { return explain(e.err) }
func (e codedError) Unwrap() error { return e.err }
func (e codedError) ExitCode() int { return e.code }

// fileFlagError is err, met opening or reading the file name that flag
// gives, said once: "--file x.txt: no such file or directory" ("open
// x.txt: …" named neither the flag nor, by the path error, the file
// alone). It still matches what err does (fs.ErrNotExist).
func fileFlagError(flag, name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, syscall.EISDIR) {
		return exitf(exitUsage, "--%s %s is a folder: give a file", flag, name)
	}
	return fmt.Errorf("--%s %s: %w", flag, name, err)
}

// exitf returns an error that exits with code without a usage dump.
func exitf(code int, format string, a ...any) error {
	return exitError{msg: fmt.Sprintf(format, a...), code: code}
}

type exitError struct {
	msg  string
	code int
}

func (e exitError) Error() string { return e.msg }
func (e exitError) ExitCode() int { return e.code }
