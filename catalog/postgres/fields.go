package postgres

import (
	"strconv"

	"github.com/lamina-bio/lamina/catalog"
)

// versionField is how SQL reads a version field a Find condition names
// (catalog.IsBuiltin), answering as catalog.VersionMatcher does in Go:
// text is the value as text, num as a number (int fields only), ok
// whether the version has the field (otherwise only != holds).
type versionField struct {
	text, num, ok string
}

var versionFields = map[string]versionField{
	"key":         {text: `a.key`, ok: `true`},
	"uid":         {text: `v.uid`, ok: `true`},
	"kind":        {text: `COALESCE(v.rec->>'kind', '')`, ok: `true`},
	"created_by":  {text: `COALESCE(v.rec->>'created_by', '')`, ok: `true`},
	"otype":       {text: `COALESCE(v.rec->>'otype', '')`, ok: `true`},
	"suffix":      {text: `COALESCE(v.rec->>'suffix', '')`, ok: `true`},
	"description": {text: `COALESCE(v.rec->>'description', '')`, ok: `true`},
	"version":     {text: `v.n::text`, num: `v.n::numeric`, ok: `true`},
	"size":        {text: `COALESCE(v.rec->>'size', '0')`, num: `COALESCE(v.rec->>'size', '0')::numeric`, ok: `true`},
	// Known for a table (a record with a shape), 0 rows too: the record
	// leaves a 0 out (catalog.Version.HasNObservations).
	"n_observations": {text: `COALESCE(v.rec->>'n_observations', '0')`, num: `COALESCE(v.rec->>'n_observations', '0')::numeric`,
		ok: `(COALESCE((v.rec->>'n_observations')::bigint, 0) > 0 OR v.rec->'shape' IS NOT NULL)`},
	// Times compare as instants, which their text (RFC 3339, any
	// offset) does not order: only ^= (on the text Go formats alike) is
	// SQL's; the other operators stay in Go.
	"created_at": {text: `(v.rec->>'created_at')`, ok: `true`},
	"mtime":      {text: `(v.rec->>'mtime')`, ok: `true`},
}

// fieldCond returns SQL that keeps the rows whose version satisfies c, a
// condition on a version field that catalog.VersionMatcher accepted, or
// false when only Go can decide it. Text compares in byte order (COLLATE
// "C") as Go's index keys do, numbers as numeric: exactly, as their keys
// (intKey, numKey) do.
func fieldCond(c catalog.Cond, args *sqlArgs) (string, bool) {
	f, ok := versionFields[c.Field]
	if !ok {
		return "", false
	}
	raw := c.Values[0]
	var value, want string
	switch {
	case c.Op == "^=":
		p := args.add(raw)
		if c.Field == "key" { // a range of the key index
			return `(a.key >= ` + p + ` AND a.key < ` + args.add(upper(raw)) + `)`, true
		}
		return `(` + f.ok + ` AND starts_with(` + f.text + `, ` + p + `))`, true
	case f.num != "":
		n, err := number(c.Field, raw)
		if err != nil {
			return "", false
		}
		value, want = f.num, args.add(n)+`::numeric`
	case c.Field == "created_at" || c.Field == "mtime":
		return "", false
	default:
		value, want = `(`+f.text+`) COLLATE "C"`, args.add(raw)+`::text COLLATE "C"`
	}
	if c.Op == "!=" {
		return `(NOT (` + f.ok + `) OR ` + value + ` <> ` + want + `)`, true
	}
	return `(` + f.ok + ` AND ` + value + ` ` + c.Op + ` ` + want + `)`, true
}

// number reads the value of a condition on an int field as
// catalog.VersionMatcher does (a size with its unit, others an int, or a
// number that is no integer for <, <=, > and >=), as the exact decimal
// text numeric reads.
func number(field, raw string) (string, error) {
	if field == "size" {
		n, err := catalog.ParseSize(raw)
		return strconv.FormatInt(n, 10), err
	}
	if text, _, err := catalog.Normalize("int", raw); err == nil {
		return text, nil
	}
	text, _, err := catalog.Normalize("float", raw)
	return text, err
}
