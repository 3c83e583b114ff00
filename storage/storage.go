// Package storage keeps named, immutable-once-written objects in a storage
// root: a local directory (the embedded default) or, later, an S3 bucket.
// Names are slash-separated ("chunks/ab/abcd…"); the content store above
// decides what they mean.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"time"
)

// ErrNotFound is returned by Get and Stat for a name that holds no object.
var ErrNotFound = fmt.Errorf("storage: object %w", fs.ErrNotExist)

// Info describes one stored object.
type Info struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// Backend is what every storage implementation provides. Implementations are
// safe for concurrent use. Put is atomic: a reader sees the whole object or
// none of it, never a part, even after a crash. Errors never contain
// credentials.
type Backend interface {
	// Put stores data under name, replacing any object there.
	Put(ctx context.Context, name string, data []byte) error
	// Get returns the object's bytes, or an error wrapping ErrNotFound.
	Get(ctx context.Context, name string) ([]byte, error)
	// GetRange returns n bytes at offset off of the object; an object
	// shorter than off+n is an error.
	GetRange(ctx context.Context, name string, off, n int64) ([]byte, error)
	// Stat describes the object, or returns an error wrapping ErrNotFound.
	Stat(ctx context.Context, name string) (Info, error)
	// Delete removes the object; a missing object is not an error.
	Delete(ctx context.Context, name string) error
	// List calls fn for every object whose name starts with prefix, in no
	// particular order; an error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(Info) error) error
	// Sync makes every Put that returned before it durable.
	Sync(ctx context.Context) error
	// String names the location for people (no credentials).
	String() string
}

// IsNotFound reports whether err means a missing object.
func IsNotFound(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// IsUnreachable reports whether err came from a server that could not be
// reached or talked to (a refused or reset connection, a name that does
// not resolve), as opposed to one that answered no. Not net.Error:
// syscall.Errno satisfies it, ENOSPC included.
func IsUnreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	var u *url.Error
	return err != nil && (errors.As(err, &op) || errors.As(err, &dns) || errors.As(err, &u))
}

// NotEOF returns err unchanged unless it wraps io.EOF, as an error of the
// S3 SDK on a dropped connection does ("request send failed … EOF"); then
// it returns an error with the same text that still answers errors.Is and
// errors.As for everything else in err's chain (retryable, unreachable,
// …) but is io.ErrUnexpectedEOF, not io.EOF: a reader must never take a
// failed request for the end of the data.
func NotEOF(err error) error {
	if err == nil || !errors.Is(err, io.EOF) {
		return err
	}
	if _, ok := err.(*notEOF); ok {
		return err
	}
	return &notEOF{err}
}

type notEOF struct{ err error }

func (e *notEOF) Error() string { return e.err.Error() }

func (e *notEOF) Is(target error) bool {
	if target == io.EOF {
		return false
	}
	return target == io.ErrUnexpectedEOF || errors.Is(e.err, target)
}

func (e *notEOF) As(target any) bool { return errors.As(e.err, target) }
