package stage_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/lamina-bio/lamina/stage"
)

// TestEmptyTableFile: an empty .csv closed in the mount is no table (it
// has no header line): no otype, as lamina save records it, and no warning
// in the daemon's log, since touch makes such files all the time. A table
// of a header alone is a DataFrame of 0 rows.
func TestEmptyTableFile(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	var log bytes.Buffer
	s, err := stage.New(e.cat, e.store, stage.Options{Dir: e.dir, User: "t", Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for key, content := range map[string]string{"t/empty.csv": "", "t/header.csv": "a,b\n"} {
		f, err := s.Create(ctx, key, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt(ctx, []byte(content), 0)
		if err := f.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		f.Release(ctx)
	}
	s.Sync(ctx)
	if v, err := e.cat.ByKey(ctx, "t/empty.csv", 0); err != nil || v.OType != "" {
		t.Errorf("empty .csv: otype %q, %v", v.OType, err)
	}
	if v, err := e.cat.ByKey(ctx, "t/header.csv", 0); err != nil || v.OType != "DataFrame" || len(v.Shape) != 2 || v.Shape[0] != 0 {
		t.Errorf("header-only .csv: otype %q shape %v, %v", v.OType, v.Shape, err)
	}
	if log.Len() != 0 {
		t.Errorf("logged:\n%s", log.String())
	}
}
