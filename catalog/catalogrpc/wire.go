// Package catalogrpc serves a catalog.Catalog over a Unix socket and
// provides the client that implements catalog.Catalog on the other end. The
// mount daemon holds the bbolt catalog open (bbolt locks the file) and
// serves it; every CLI command run while a mount is up talks to the daemon
// through a Client instead of opening the file.
//
// The protocol is newline-delimited JSON on a stream socket: the client
// writes {"m": method, "a": args}, the server answers {"r": result} or
// {"e": error}; Each streams {"v": version} frames before its answer. A
// connection carries one call at a time; the client keeps a pool of them.
// Errors keep their meaning across the socket: errors.Is and errors.As
// match the same sentinels (catalog.ErrNotFound, ref.ErrBadKey, …) and
// *catalog.AmbiguousError as on the store itself.
package catalogrpc

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"syscall"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// Methods on the wire.
const (
	mHello       = "hello"
	mSave        = "save"
	mByUID       = "by_uid"
	mByKey       = "by_key"
	mVersions    = "versions"
	mList        = "list"
	mTrash       = "trash"
	mRestore     = "restore"
	mRestoreNode = "restore_node"
	mRestoreWith = "restore_trashed_with"
	mTrashList   = "trash_list"
	mPurge       = "purge"
	mPurgeTrash  = "purge_trashed"
	mEach        = "each"
	mCounts      = "counts"
	mOutbox      = "outbox"
	mOutboxDone  = "outbox_done"
	mChildren    = "children"
	mStatus      = "status"
	mSnapshot    = "snapshot"
	mCache       = "cache"
)

type request struct {
	M string          `json:"m"`
	A json.RawMessage `json:"a,omitempty"`
	// P is the client's Protocol, sent with every write: a server refuses
	// a write without it, from a client older than the field, which never
	// checked the server's build and could lose what one of them does not
	// know of the write. An older server ignores it: no Protocol bump.
	P int `json:"p,omitempty"`
}

type response struct {
	R json.RawMessage  `json:"r,omitempty"`
	V *catalog.Version `json:"v,omitempty"` // one version of an Each stream
	E *wireError       `json:"e,omitempty"`
}

type pathArgs struct {
	Path string `json:"path"`
}

// CacheArgs ask a mount daemon to act on its disk cache.
type CacheArgs struct {
	Op    string `json:"op"`              // "clear", "limit" or "prefetch"
	Limit int64  `json:"limit,omitempty"` // bytes, for "limit"
	// For "prefetch": the version (KEY[@vN]) and the first of its chunks
	// (in file order) to fetch; the daemon fetches a batch from there and
	// says where the next begins, so that the CLI shows progress.
	Spec string `json:"spec,omitempty"`
	From int    `json:"from,omitempty"`
}

type keyArgs struct {
	Key   string `json:"key"`
	N     int    `json:"n,omitempty"`
	Trash bool   `json:"trash,omitempty"`
	Kind  string `json:"kind,omitempty"` // of what the trash holds (PurgeTrashed)
}

// Protocol numbers the wire protocol: it grows when a call or an argument
// is added that an older server would ignore or refuse.
const Protocol = 11 // 4: restore_node; 5: unannotate; 6: reruns, a run's job; 7: unannotate's resolved values (an older server ignores them and keeps terms); 8: delete_feature, delete_label, delete_schema; 9: restore_trashed_with; 10: purge_trashed of kind "unreferenced" (an older server purges nothing: not found); 11: delete_collection

// Hello is what a server says about itself.
type Hello struct {
	ID  string `json:"id"`  // the server's identity (the instance id)
	PID int    `json:"pid"` // the serving process
	// Build identifies the server's program (ServerOptions.Build); empty
	// from a server older than the field.
	Build string `json:"build,omitempty"`
	// Protocol is the server's Protocol; 0 from a server older than it (1).
	Protocol int `json:"protocol,omitempty"`
	// BuildTime is when the commit the server was built from was made
	// (RFC 3339; ServerOptions.BuildTime), for a client of the same
	// Protocol to tell which build is the newer: empty when not known,
	// and from a server older than the field (an older client ignores it).
	BuildTime string `json:"build_time,omitempty"`
}

// writes are the methods that change the catalog: what a Client refuses
// once told to (RefuseWrites).
var writes = map[string]bool{
	mSave: true, mTrash: true, mRestore: true, mRestoreNode: true, mRestoreWith: true, mPurge: true, mPurgeTrash: true, mOutboxDone: true,
	mCreateFeature: true, mCreateLabel: true, mCreateSchema: true, mDeleteFeature: true, mDeleteLabel: true, mDeleteSchema: true, mDeleteColl: true, mAnnotate: true, mUnannotate: true, mSaveCollection: true,
	mSaveTransform: true, mStartRun: true, mFinishRun: true, mAddInputs: true, mCreditOutputs: true,
	mRename: true, mRenameFolder: true, mSetAttrs: true, mMakeFolder: true, mRemoveFolder: true,
	mSymlink: true, mRemoveLink: true,
}

// kinds maps wire names to the sentinels an error matched on the server.
// More specific ones come first.
var kinds = []struct {
	name string
	err  error
}{
	{"keytoolong", ref.ErrKeyTooLong},
	{"badkey", ref.ErrBadKey},
	{"baddigest", ref.ErrBadDigest},
	{"baduid", ref.ErrBadUID},
	{"notfound", catalog.ErrNotFound},
	{"conflict", catalog.ErrConflict},
	{"kind", catalog.ErrKind},
	{"schema", catalog.ErrSchema},
	{"writtenagain", catalog.ErrWrittenAgain},
	{"referenced", catalog.ErrReferenced},
	{"canceled", context.Canceled},
	{"deadline", context.DeadlineExceeded},
}

// unknownCall begins a server's answer to a call it does not know; every
// protocol's server says it so.
const unknownCall = "catalogrpc: unknown call "

type wireError struct {
	Msg        string            `json:"msg"`
	Kind       string            `json:"kind,omitempty"`
	Errno      int               `json:"errno,omitempty"`
	Prefix     string            `json:"prefix,omitempty"` // of an ambiguous uid
	Candidates []catalog.Version `json:"candidates,omitempty"`
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	w := &wireError{Msg: err.Error()}
	var amb *catalog.AmbiguousError
	if errors.As(err, &amb) {
		w.Kind, w.Prefix, w.Candidates = "ambiguous", amb.Prefix, amb.Candidates
		return w
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			w.Kind = k.name
			break
		}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		w.Errno = int(errno)
	}
	return w
}

func (w *wireError) err() error {
	if w.Kind == "ambiguous" {
		return &catalog.AmbiguousError{Prefix: w.Prefix, Candidates: w.Candidates}
	}
	e := &remoteError{msg: w.Msg}
	if w.Kind == "" && strings.HasPrefix(w.Msg, unknownCall) {
		// A daemon of an older protocol that lacks the call: callers may
		// do without it (errors.ErrUnsupported).
		e.kinds = append(e.kinds, errors.ErrUnsupported)
	}
	for _, k := range kinds {
		if k.name == w.Kind {
			e.kinds = append(e.kinds, k.err)
		}
	}
	if w.Errno != 0 {
		e.kinds = append(e.kinds, syscall.Errno(w.Errno))
	}
	return e
}

// remoteError carries the server's message and matches the sentinels the
// server's error matched.
type remoteError struct {
	msg   string
	kinds []error
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return e.kinds }
