package storage_test

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"testing"

	"github.com/lamina-bio/lamina/storage"
)

// The S3 SDK reports a dropped connection with an error that wraps io.EOF;
// NotEOF keeps everything else of it (unreachable, its text) but not that.
func TestNotEOF(t *testing.T) {
	sdk := fmt.Errorf("operation error S3: GetObject: request send failed: %w", &url.Error{Op: "Get", URL: "http://x", Err: io.EOF})
	err := storage.NotEOF(sdk)
	if errors.Is(err, io.EOF) {
		t.Fatal("NotEOF(err) is io.EOF")
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) || !storage.IsUnreachable(err) || err.Error() != sdk.Error() {
		t.Fatalf("NotEOF lost what err said: %v (unexpected EOF %v, unreachable %v)", err, errors.Is(err, io.ErrUnexpectedEOF), storage.IsUnreachable(err))
	}
	if w := fmt.Errorf("chunk: %w", err); errors.Is(w, io.EOF) {
		t.Fatal("a wrapped NotEOF is io.EOF")
	}
	other := errors.New("x")
	if storage.NotEOF(other) != other || storage.NotEOF(nil) != nil {
		t.Fatal("NotEOF changed an error that is not io.EOF")
	}
}
