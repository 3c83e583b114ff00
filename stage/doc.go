// Package stage is the write side of a mount, in plain Go that tests call
// without FUSE: files being written are staged in a folder of the instance's
// data dir, committed as new versions through cache.Writer and
// catalog.Save, renamed, unlinked and touched (DESIGN §3, issue 4).
//
// # Files and handles
//
// A File is one staging file for a key. An open that creates or truncates
// (O_TRUNC) starts a File of its own; an open for writing without O_TRUNC
// joins the File another writer of the key holds (Join, OpenShared), as it
// would share one inode, and starts one only when none is held. Writers
// with Files of their own each make their own version. A File opened on an
// existing key without truncation copies the latest version into its
// staging file on the first write (copy on write); until then reads go to
// the version. A first change in the version's last chunk or after it (an
// append) copies that chunk only, leaving a hole below that reads, commits
// and recovers as the version's bytes (lazycopy.go). Staged bytes live on disk, never in memory, whatever the
// size. A File remembers the lowest offset written or truncated since the
// copy or its last commit; its commit keeps the chunks of that content
// before it (cache.Writer.PutFileOver: the same chunks a full store gives)
// and reads the staged file's holes as zeros without reading them
// (holes.go).
//
// # When a version is made
//
// Flush (close(2), which FUSE sends as FLUSH for every closed descriptor)
// commits a File whose bytes changed since its last commit and returns the
// commit's error. A File created or truncated that is flushed before
// anything was written (a shell's redirect closes its first descriptor
// after dup2, before the command writes through the copy) waits for a
// later close or Release, so `touch` and `echo x > new` both make exactly
// one version; when the closing process holds no copy of the closed
// descriptor (no other writable descriptor of the file, or no more of
// them than its other open handles), the mount calls FlushLast instead, which commits
// it at once (`: > f`, touch: the version is there when close(2) returns,
// and a failed commit is close(2)'s error). The mount sends Flush
// only for the process that opened the file: a child closing a descriptor
// it inherited (`(cmd1; cmd2) > out`) is not the writer's close, and its
// bytes are committed by the opener's close or at Release. The close of a
// handle that wrote nothing through itself (touch or `: >> f` of a file
// another writer shares) is FlushIdle: while another handle of the File is
// open it commits none of their bytes, which their writers' closes (or an
// fsync) commit. An open that changes
// nothing makes no version; a File whose only change is its mtime sets the
// latest version's mtime. The version's mtime is the staged mtime the
// writer saw (nanoseconds), so make-like tools never see it move.
//
// truncate(2) by path goes to the newest File of the key while its writer
// still has it: just opened (the kernel sends open(O_TRUNC) as OPEN, then a
// SETATTR without the handle) or holding uncommitted bytes. A File closed
// with everything committed (each of its handles, if writers share it),
// whose RELEASE the kernel sends later and asynchronously, is left alone:
// the truncate is then another process's change and makes a version of its
// own at once, credited to that process's run.
//
// # Crash safety
//
// The staging folder's journal (journal.go) records each staged file's
// state, a line appended per change: "open" while the file is open,
// "closed" when a flush starts a commit, "open" again at the first change
// after a commit (a sharer's close, an fsync) before it lands, "done" once
// released after a commit whose durability is deferred
// (Options.SyncEvery), "gone" when nothing is left to recover. An open
// record names the version its bytes were staged over (opened, followed
// or committed). Bytes written after the last commit and never closed nor
// fsynced are then no version after a crash: the latest stays the last
// commit (before, the record stayed closed and Recover committed them,
// "its writer had closed it"). That is one record per commit, not per
// write; a lazy commit is made durable first, since the closed record is
// what redoes it. An append is one write(2): a killed daemon
// loses nothing the kernel has, so none is synced, and no file is created,
// renamed or removed per change. Sync rewrites the journal with only its
// live records (or removes it). Recover, run before the mount serves,
// commits every closed file (a commit that had landed, its bytes the
// key's latest version's, is left alone, silently), keeps the bytes of
// every open one under lost+found/ with a message, and checks every done
// one: its content intact, and its version in the catalog. An open file
// with no change of its own leaves nothing (a debug line): empty (opened
// and never written: an idle O_RDWR or O_APPEND, a clean File that
// followed a newer version; or created, or truncated by O_TRUNC, and
// never written: no bytes were lost, the key keeps its latest version or
// never existed) or holding the bytes of its base or the key's latest
// version (copied and not changed). Journal files of the layout
// before (ID.open, ID.closed, ID.done) are read too. A close whose commit
// failed (the catalog away) keeps its bytes staged and is committed again
// while the Stage runs, in the order of the closes (retry.go); Recover
// has what is left.
//
// With SyncEvery the catalog may commit a close's version lazily
// (catalog.Lazy): a held bbolt catalog keeps it in a write transaction
// committed with the saves that follow within 100 ms, one fsync for all,
// and every other call sees it at once. A done record carries the save's
// LazySeq; a catalog whose LazyCommitted is lower lost the version (the
// daemon was killed first), and Recover commits the staged bytes again.
// Sync (every SyncEvery, at fsync and at unmount) makes the content, the
// index and the catalog durable before it drops the staged bytes. A
// commit that fails for room (catalog.ErrCommitFailing) keeps the
// versions in the catalog's memory, retried: their staged bytes wait. A
// done record above LazyCommitted after a Flush that did not fail so (the
// catalog lost its transaction) is a failed close, committed again while
// the Stage runs.
//
// A File of a new key draws its artifact's stem at open; its journal
// records keep it, and every commit of its bytes (its closes, a retry,
// Recover) asks the catalog for it (catalog.NewVersion.Stem), so that a
// version redone after a stop that lost the lazy commit has the uid its
// writer saw.
//
// Dropped staging files are emptied and kept as spares for the next File
// (spare.go): on ext4 without a journal a new inode is slow to allocate
// while many were freed lately.
//
// # Locking
//
// Stage.mu guards Stage.open (key → open Files) and every File's key and
// deleted fields; File.mu guards the rest of a File and is held across its
// commit. Lock order: File.mu before Stage.mu.
package stage
