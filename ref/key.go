package ref

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Key limits from DESIGN §2.
const (
	MaxKeyLen     = 1024
	MaxSegmentLen = 255
)

// ErrBadKey is wrapped by every key validation error; ErrKeyTooLong also
// wraps it and is reported as ENAMETOOLONG by the mount.
var (
	ErrBadKey     = errors.New("bad key")
	ErrKeyTooLong = fmt.Errorf("%w: too long", ErrBadKey)
	// ErrNotUTF8 is also wrapped by the errors for a key, a prefix or a
	// name (catalog.CheckName) that is not valid UTF-8: the CLI exits 2.
	// Stored names are UTF-8 (PostgreSQL refuses anything else, and
	// exports are JSON), so no such text can name anything.
	ErrNotUTF8 = errors.New("not valid UTF-8")
)

// notUTF8 is a key or prefix that is not valid UTF-8: ErrBadKey and
// ErrNotUTF8.
type notUTF8 string

func (e notUTF8) Error() string   { return string(e) }
func (e notUTF8) Unwrap() []error { return []error{ErrBadKey, ErrNotUTF8} }

var versionSuffix = regexp.MustCompile(`@v[0-9]+$`)

// CheckKey returns nil if key is a valid key for something new (a version,
// a folder, a link, a rename's target), or an error that names the rule it
// breaks. Every segment is a name the mount shows, so none may end in .meta
// or @v<digits> (DESIGN §2): a folder so named would hide the sidecar or the
// version of the file beside it.
func CheckKey(key string) error {
	if err := CheckExistingKey(key); err != nil {
		return err
	}
	segs := strings.Split(key, "/")
	for _, seg := range segs[:len(segs)-1] {
		if err := CheckName(seg); err != nil {
			return fmt.Errorf("%w %q: a folder may not be named %q: %s", ErrBadKey, key, seg, reserved(seg))
		}
	}
	return nil
}

// CheckExistingKey is CheckKey for a key that names something which may
// already be in a catalog (a lookup, a delete, a rename's source): it leaves
// out the rule on folder names, which Lamina did not check before, so keys
// such as "a/b.meta/c" saved then can still be shown, renamed and deleted.
func CheckExistingKey(key string) error {
	bad := func(rule string) error { return fmt.Errorf("%w %q: %s", ErrBadKey, key, rule) }
	switch {
	case key == "":
		return bad("a key may not be empty")
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: key is %d bytes, at most %d are allowed", ErrKeyTooLong, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return notUTF8(fmt.Sprintf("%v %q: a key must be valid UTF-8", ErrBadKey, key))
	case strings.IndexByte(key, 0) >= 0:
		return bad("a key may not contain a NUL byte")
	case strings.IndexFunc(key, isControl) >= 0:
		return bad("a key may not contain a control character (a newline, a tab, …)")
	case strings.HasPrefix(key, "/"):
		return bad("a key may not start with '/'")
	case key == ViewRoot || strings.HasPrefix(key, ViewRoot+"/"):
		return bad("the top folder " + ViewRoot + " is reserved for the mount's collections view")
	}
	for _, seg := range strings.Split(key, "/") {
		switch {
		case seg == "":
			return bad("a key may not have an empty segment (a leading, trailing or doubled '/')")
		case seg == "." || seg == "..":
			return bad("a key may not have a '.' or '..' segment")
		case len(seg) > MaxSegmentLen:
			return fmt.Errorf("%w: segment %.40q… is %d bytes, at most %d are allowed", ErrKeyTooLong, seg, len(seg), MaxSegmentLen)
		}
	}
	return CheckName(key[strings.LastIndexByte(key, '/')+1:])
}

// ViewRoot is the top folder where a mount shows collections; no key may
// live under it (the mount would hide it).
const ViewRoot = ".lamina"

// isControl reports an ASCII control character: tables and tab-separated
// output would break on one, and few tools expect one in a path.
func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// CheckName checks the rules that apply to every segment of a key: the
// names the mount reserves for versions and sidecars.
func CheckName(name string) error {
	if r := reserved(name); r != "" {
		return fmt.Errorf("%w %q: %s", ErrBadKey, name, r)
	}
	return nil
}

// reserved says why the mount reserves name, or "" when it does not.
func reserved(name string) string {
	switch {
	case strings.HasSuffix(name, ".meta"):
		return "a name may not end in .meta (reserved for sidecars)"
	case versionSuffix.MatchString(name):
		return "a name may not end in @v<digits> (reserved for versions)"
	}
	return ""
}

// CheckPrefix checks a key prefix used to list ("" or ending in "/" is a
// folder; anything else must be a valid partial key).
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if !utf8.ValidString(prefix) {
		return notUTF8(fmt.Sprintf("%v %q: a prefix must be valid UTF-8", ErrBadKey, prefix))
	}
	p := strings.TrimSuffix(prefix, "/")
	if p == "" {
		return fmt.Errorf("%w %q: a prefix may not start with '/'", ErrBadKey, prefix)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w %q: a prefix may not have an empty, '.' or '..' segment", ErrBadKey, prefix)
		}
	}
	return nil
}

// Spec names one version: a key with an optional @vN, or a uid (prefix).
type Spec struct {
	Key     string // set when the spec names a key
	Version int    // 0 means the latest
	UID     string // set when the spec is a uid or uid prefix
}

// ParseSpec parses "KEY", "KEY@vN" or a uid prefix. Text that is a valid key
// and also looks like a uid prefix is taken as a key when it contains '/' or
// '.', else as a uid; callers that find no such uid may retry as a key.
func ParseSpec(s string) (Spec, error) {
	if k, n, ok := SplitVersion(s); ok {
		if err := CheckExistingKey(k); err != nil {
			return Spec{}, err
		}
		if n == 0 {
			if strings.Trim(s[len(k)+2:], "0") != "" {
				return Spec{}, fmt.Errorf("%w %q: version number too large", ErrBadKey, s)
			}
			return Spec{}, fmt.Errorf("%w %q: versions are numbered from 1 (%s@v1 is the first; %s alone names the latest)", ErrBadKey, s, k, k)
		}
		return Spec{Key: k, Version: n}, nil
	}
	if IsUIDPrefix(s) && !strings.ContainsAny(s, "/.") {
		return Spec{UID: s}, nil
	}
	if err := CheckExistingKey(s); err != nil {
		return Spec{}, err
	}
	return Spec{Key: s}, nil
}

// SplitVersion splits "KEY@vN" (N decimal digits, KEY not empty) into KEY
// and N; n is 0 when the digits name no version (0, or too large). ok is
// false for text without such a suffix.
func SplitVersion(s string) (key string, n int, ok bool) {
	i := strings.LastIndex(s, "@v")
	if i <= 0 || !versionSuffix.MatchString(s[i:]) {
		return "", 0, false
	}
	n, err := strconv.Atoi(s[i+2:])
	if err != nil {
		n = 0
	}
	return s[:i], n, true
}

// String formats the spec back as the user would write it.
func (s Spec) String() string {
	switch {
	case s.UID != "":
		return s.UID
	case s.Version > 0:
		return fmt.Sprintf("%s@v%d", s.Key, s.Version)
	}
	return s.Key
}
