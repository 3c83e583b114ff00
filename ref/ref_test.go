package ref_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lamina-bio/lamina/ref"
)

func TestCheckKey(t *testing.T) {
	for _, tc := range []struct {
		key     string
		ok      bool
		tooLong bool
	}{
		{"a", true, false},
		{"scrna/batch1.h5ad", true, false},
		{"ünïcode/データ.csv", true, false},
		{"a/b@v", true, false},
		{"a/b@vx", true, false},
		{"meta.json", true, false},
		{"", false, false},
		{"/a", false, false},
		{"a/", false, false},
		{"a//b", false, false},
		{"./a", false, false},
		{"a/../b", false, false},
		{"a\x00b", false, false},
		{"nl\nkey", false, false},
		{"tab\tkey", false, false},
		{".lamina", false, false},
		{".lamina/collections/x", false, false},
		{"a/.lamina/x", true, false},
		{".laminas/x", true, false},
		{"\xff\xfe", false, false},
		{"x.meta", false, false},
		{"dir/x@v12", false, false},
		// Every segment is a name in the mount: a folder named so would
		// hide the sidecar or the version of the file beside it.
		{"a/b.meta/c", false, false},
		{"q@v2/y", false, false},
		{"a/b@v/c", true, false},
		{"a/b.metadata/c", true, false},
		{strings.Repeat("abc/", 255) + "abcd", true, false},
		{strings.Repeat("abc/", 255) + "abcde", false, true},
		{strings.Repeat("a", 255) + "/b", true, false},
		{strings.Repeat("a", 256) + "/b", false, true},
	} {
		err := ref.CheckKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("CheckKey(%.30q) = %v, want ok=%v", tc.key, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ref.ErrBadKey) {
			t.Errorf("CheckKey(%.30q) error does not wrap ErrBadKey", tc.key)
		}
		if errors.Is(err, ref.ErrKeyTooLong) != tc.tooLong {
			t.Errorf("CheckKey(%.30q) too long = %v, want %v", tc.key, errors.Is(err, ref.ErrKeyTooLong), tc.tooLong)
		}
	}
}

// TestCheckExistingKey: keys saved before every folder name was checked
// can still be named (shown, deleted, renamed away); the rest of the rules
// hold.
func TestCheckExistingKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"a/b.meta/c", true},
		{"q@v2/y", true},
		{"a/b", true},
		{"a/b.meta", false},
		{"q@v2", false},
		{"a//b", false},
		{"a/../b", false},
	} {
		if err := ref.CheckExistingKey(tc.key); (err == nil) != tc.ok {
			t.Errorf("CheckExistingKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
		}
	}
	err := ref.CheckKey("a/b.meta/c")
	if err == nil || !strings.Contains(err.Error(), `a folder may not be named "b.meta"`) {
		t.Errorf("CheckKey of a folder named .meta: %v", err)
	}
	for in, want := range map[string]ref.Spec{
		"a/b.meta/c":    {Key: "a/b.meta/c"},
		"a/b.meta/c@v2": {Key: "a/b.meta/c", Version: 2},
		"q@v2/y":        {Key: "q@v2/y"},
	} {
		if got, err := ref.ParseSpec(in); err != nil || got != want {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ref.Spec
	}{
		{"exp/a.csv", ref.Spec{Key: "exp/a.csv"}},
		{"exp/a.csv@v2", ref.Spec{Key: "exp/a.csv", Version: 2}},
		{"3fQx0Zk1", ref.Spec{UID: "3fQx0Zk1"}},
		{"3fQx0Zk1abcdefgh0000", ref.Spec{UID: "3fQx0Zk1abcdefgh0000"}},
		{"README", ref.Spec{Key: "README"}}, // too short for a uid
	} {
		got, err := ref.ParseSpec(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"a/../b@v1", "x@v0"} {
		if _, err := ref.ParseSpec(bad); err == nil {
			t.Errorf("ParseSpec(%q) accepted", bad)
		}
	}
	// Version 0 is not a bad name: versions start at 1. One past any int
	// is too large, not 0.
	for s, want := range map[string]string{
		"exp/b.csv@v0":                      "versions are numbered from 1",
		"exp/b.csv@v00":                     "versions are numbered from 1",
		"exp/b.csv@v99999999999999999999":   "version number too large",
		"exp/b.csv@v0099999999999999999999": "version number too large",
	} {
		_, err := ref.ParseSpec(s)
		if !errors.Is(err, ref.ErrBadKey) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `"`+s+`"`) {
			t.Errorf("ParseSpec(%q): %v, want %q", s, err, want)
		}
	}
}

func TestUIDs(t *testing.T) {
	stem := ref.NewStem()
	if len(stem) != ref.StemLen || !ref.IsUIDPrefix(stem) {
		t.Fatalf("stem %q", stem)
	}
	if ref.NewStem() == stem {
		t.Fatal("two equal stems")
	}
	prev := ""
	for _, n := range []int{1, 2, 10, 62, 63, 3844, 238328} {
		u := ref.VersionUID(stem, n)
		if len(u) != ref.UIDLen || !strings.HasPrefix(u, stem) {
			t.Fatalf("VersionUID(%d) = %q", n, u)
		}
		if u <= prev {
			t.Fatalf("uids do not sort by version: %q after %q", u, prev)
		}
		prev = u
	}
	if got := ref.VersionUID(stem, 1); !strings.HasSuffix(got, "0000") {
		t.Fatalf("version 1 uid %q", got)
	}
}

func TestDigest(t *testing.T) {
	d := ref.Sum([]byte("abc"))
	h := ref.NewHasher()
	h.Write([]byte("a"))
	h.Write([]byte("bc"))
	if h.Digest() != d {
		t.Fatal("streamed digest differs")
	}
	p, err := ref.ParseDigest(d.String())
	if err != nil || p != d {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := ref.ParseDigest("zz"); !errors.Is(err, ref.ErrBadDigest) {
		t.Fatal("bad digest accepted")
	}
}

func FuzzCheckKey(f *testing.F) {
	for _, s := range []string{"a/b", "a//b", "x.meta", "x@v1", "..", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if ref.CheckKey(key) != nil {
			return
		}
		// Whatever passes obeys every rule.
		if len(key) > ref.MaxKeyLen || !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
			t.Fatalf("accepted %q", key)
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." || len(seg) > ref.MaxSegmentLen {
				t.Fatalf("accepted segment %q of %q", seg, key)
			}
		}
		for _, seg := range strings.Split(key, "/") {
			if strings.HasSuffix(seg, ".meta") {
				t.Fatalf("accepted %q", key)
			}
		}
		// A valid key always parses back as itself (as a key or a uid).
		s, err := ref.ParseSpec(key)
		if err != nil || (s.Key != key && s.UID != key) {
			t.Fatalf("ParseSpec(%q) = %+v, %v", key, s, err)
		}
	})
}

func TestSuffix(t *testing.T) {
	for name, want := range map[string]string{
		"a/b.csv": ".csv", "b.csv.gz": ".csv.gz", "pbmc.zarr/": ".zarr", "README": "", ".bashrc": "",
		"x/data.tar.gz": ".tar.gz", "notes.longextension.gz": ".gz",
	} {
		if got := ref.Suffix(name); got != want {
			t.Errorf("Suffix(%q) = %q, want %q", name, got, want)
		}
	}
	if ref.OType(".csv.gz") != "DataFrame" || ref.OType(".h5ad") != "AnnData" || ref.OType(".txt") != "" {
		t.Error("OType")
	}
}
