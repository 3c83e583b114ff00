// Package stage is the write side of a mount, in plain Go that tests call
// without FUSE: files being written are staged in a folder of the instance's
// cache dir, committed as new versions through cache.Writer and
// catalog.Save, renamed, unlinked and touched (DESIGN §3, issue 4).
//
// # Files and handles
//
// Every writable open is a File with its own staging file, so several
// writers of one key each make their own version. A File opened on an
// existing key without truncation copies the latest version into its
// staging file on the first write (copy on write); until then reads go to
// the version. Staged bytes live on disk, never in memory, whatever the
// size.
//
// # When a version is made
//
// Flush (close(2), which FUSE sends as FLUSH for every closed descriptor)
// commits a File whose bytes changed since its last commit and returns the
// commit's error. A File created on a new key that is flushed before
// anything was written (a shell's redirect closes its first descriptor
// before the command writes) is committed at Release instead, so `touch`
// and `echo x > new` both make exactly one version. An open that changes
// nothing makes no version; a File whose only change is its mtime sets the
// latest version's mtime. The version's mtime is the staged mtime the
// writer saw (nanoseconds), so make-like tools never see it move.
//
// # Crash safety
//
// Beside each staging file "<id>" is a journal file: "<id>.open" while the
// file is open, renamed to "<id>.closed" when a flush starts a commit, both
// removed at Release. They hold the key and mode. Recover, run before the
// mount serves, commits every closed File (a commit that had landed makes
// no second version: same bytes) and keeps every File that was never closed
// under lost+found/ with a message. No fsync is needed for a killed daemon:
// the kernel keeps what was written. Sync (fsync) makes staged and
// committed data durable on disk.
//
// # Locking
//
// Stage.mu guards Stage.open (key → open Files) and every File's key and
// deleted fields; File.mu guards the rest of a File and is held across its
// commit. Lock order: File.mu before Stage.mu.
package stage
