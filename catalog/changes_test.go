package catalog_test

import (
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

func TestChangeMarkers(t *testing.T) {
	for _, tc := range []struct{ from, to string }{
		{"proj/r1.txt", "proj/r1-renamed.txt"},
		{"fa", "fb"},
		{"données/a b", "x/données"},
	} {
		c := catalog.RenameChange(tc.from, tc.to)
		if from, to, ok := catalog.ChangedRename(c); !ok || from != tc.from || to != tc.to {
			t.Errorf("ChangedRename(RenameChange(%q, %q)) = %q, %q, %v", tc.from, tc.to, from, to, ok)
		}
		if _, ok := catalog.ChangedDelete(c); ok || !catalog.IsMarker(c) {
			t.Errorf("%q: taken for a delete, or not for a marker", c)
		}
		d := catalog.DeleteChange(tc.from)
		if k, ok := catalog.ChangedDelete(d); !ok || k != tc.from || !catalog.IsMarker(d) {
			t.Errorf("ChangedDelete(DeleteChange(%q)) = %q, %v", tc.from, k, ok)
		}
		if _, _, ok := catalog.ChangedRename(d); ok {
			t.Errorf("%q taken for a rename", d)
		}
		if catalog.IsMarker(tc.from) {
			t.Errorf("key %q taken for a marker", tc.from)
		}
	}
}
