package catalog

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Records of the versions and artifacts buckets are kept in a compact
// binary form: decoding one is a single allocation and a few varint reads,
// where JSON cost ~20 µs and three times the bytes (docs/annotate-bench.md
// has the figures). Catalogs written before schema 2 hold JSON records;
// they are read as they are (a JSON record starts with '{') and replaced
// by binary ones when next written.
//
// Binary record, format byte 0x01 then fields in this order (str is a
// uvarint length and the bytes; int a zigzag varint; time an int of unix
// seconds and a uvarint of nanoseconds, UTC; opt a byte 0 or 1 and, for 1,
// the value):
//
//	version   str uid, str key, int version, str kind, str suffix, str otype,
//	          int n_observations, uvarint n + n × int shape,
//	          uvarint n + n × (str name, str slot, str dtype, str label) columns,
//	          int n_files, int size, 32 bytes digest, str manifest,
//	          str description, str created_by, time created_at, time mtime,
//	          str run, uvarint mode, byte trashed (0 or 1), opt time trashed_at
//	artifact  str stem, str key, str kind, int versions, int latest,
//	          opt time trashed_at
//
// A new field means a new format byte; readers keep reading the old ones.
// Format 0x02 is a version record of format 0x01 followed by str revises
// (the uid the version revises, lamina save --revises). Only a version
// that revises another is written in it, so builds that read only 0x01
// still read every other record.
const (
	recordV1 = 0x01
	recordV2 = 0x02
)

var errRecord = errors.New("malformed record")

type encoder struct{ b []byte }

func (e *encoder) uvarint(x uint64) { e.b = binary.AppendUvarint(e.b, x) }
func (e *encoder) int(x int64)      { e.b = binary.AppendVarint(e.b, x) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) time(t time.Time) { e.int(t.Unix()); e.uvarint(uint64(t.Nanosecond())) }

func (e *encoder) bool(x bool) {
	if x {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) optTime(t *time.Time) {
	e.bool(t != nil)
	if t != nil {
		e.time(*t)
	}
}

// decoder reads a binary record. The first error sticks: later reads
// return zero values, so a caller checks err once at the end.
type decoder struct {
	raw []byte // the record, for varints
	s   string // a copy of raw: strings are slices of it, one allocation per record
	i   int
	err error
}

func newDecoder(raw []byte) *decoder { return &decoder{raw: raw, s: string(raw)} }

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errRecord
	}
	d.i = len(d.raw)
}

func (d *decoder) uvarint() uint64 {
	x, n := binary.Uvarint(d.raw[d.i:])
	if n <= 0 {
		d.fail()
		return 0
	}
	d.i += n
	return x
}

func (d *decoder) int() int64 {
	x, n := binary.Varint(d.raw[d.i:])
	if n <= 0 {
		d.fail()
		return 0
	}
	d.i += n
	return x
}

// count reads a length that at least min bytes each must follow.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.raw)-d.i)/uint64(min) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	n := d.count(1)
	s := d.s[d.i : d.i+n]
	d.i += n
	return s
}

func (d *decoder) byte() byte {
	if d.i >= len(d.raw) {
		d.fail()
		return 0
	}
	d.i++
	return d.raw[d.i-1]
}

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail()
	return false
}

func (d *decoder) time() time.Time {
	sec, ns := d.int(), d.uvarint()
	if ns >= 1e9 {
		d.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(ns)).UTC()
}

func (d *decoder) optTime() *time.Time {
	if !d.bool() {
		return nil
	}
	t := d.time()
	return &t
}

// end checks that the whole record was read.
func (d *decoder) end() error {
	if d.err == nil && d.i != len(d.raw) {
		d.err = errRecord
	}
	return d.err
}

func encodeVersion(v Version) []byte {
	e := encoder{b: make([]byte, 0, 160+len(v.Key)+len(v.Description)+24*len(v.Columns))}
	format := byte(recordV1)
	if v.Revises != "" {
		format = recordV2
	}
	e.b = append(e.b, format)
	e.str(v.UID)
	e.str(v.Key)
	e.int(int64(v.Version))
	e.str(v.Kind)
	e.str(v.Suffix)
	e.str(v.OType)
	e.int(v.NObservations)
	e.uvarint(uint64(len(v.Shape)))
	for _, x := range v.Shape {
		e.int(x)
	}
	e.uvarint(uint64(len(v.Columns)))
	for _, c := range v.Columns {
		e.str(c.Name)
		e.str(c.Slot)
		e.str(c.Dtype)
		e.str(c.Label)
	}
	e.int(int64(v.NFiles))
	e.int(v.Size)
	e.b = append(e.b, v.Digest[:]...)
	e.str(v.Manifest)
	e.str(v.Description)
	e.str(v.CreatedBy)
	e.time(v.CreatedAt)
	e.time(v.Mtime)
	e.str(v.Run)
	e.uvarint(uint64(v.Mode))
	e.bool(v.Trashed)
	e.optTime(v.TrashedAt)
	if format == recordV2 {
		e.str(v.Revises)
	}
	return e.b
}

// decodeVersion reads a version record, binary or JSON.
func decodeVersion(raw []byte) (Version, error) {
	if len(raw) > 0 && raw[0] == '{' {
		return fromJSON[Version](raw)
	}
	var v Version
	if len(raw) == 0 || (raw[0] != recordV1 && raw[0] != recordV2) {
		return v, errRecord
	}
	d := newDecoder(raw)
	d.i = 1
	v.UID = d.str()
	v.Key = d.str()
	v.Version = int(d.int())
	v.Kind = d.str()
	v.Suffix = d.str()
	v.OType = d.str()
	v.NObservations = d.int()
	if n := d.count(1); n > 0 {
		v.Shape = make([]int64, n)
		for i := range v.Shape {
			v.Shape[i] = d.int()
		}
	}
	if n := d.count(4); n > 0 {
		v.Columns = make([]Column, n)
		for i := range v.Columns {
			v.Columns[i] = Column{Name: d.str(), Slot: d.str(), Dtype: d.str(), Label: d.str()}
		}
	}
	v.NFiles = int(d.int())
	v.Size = d.int()
	if d.i+len(v.Digest) > len(raw) {
		d.fail()
	} else {
		copy(v.Digest[:], raw[d.i:])
		d.i += len(v.Digest)
	}
	v.Manifest = d.str()
	v.Description = d.str()
	v.CreatedBy = d.str()
	v.CreatedAt = d.time()
	v.Mtime = d.time()
	v.Run = d.str()
	if m := d.uvarint(); m > math.MaxUint32 {
		d.fail()
	} else {
		v.Mode = uint32(m)
	}
	v.Trashed = d.bool()
	v.TrashedAt = d.optTime()
	if raw[0] == recordV2 {
		if v.Revises = d.str(); v.Revises == "" {
			d.fail() // written only with a uid: one encoding per version
		}
	}
	if err := d.end(); err != nil {
		return Version{}, err
	}
	return v, nil
}

func encodeArtifact(a *artifact) []byte {
	e := encoder{b: make([]byte, 0, 48+len(a.Key))}
	e.b = append(e.b, recordV1)
	e.str(a.Stem)
	e.str(a.Key)
	e.str(a.Kind)
	e.int(int64(a.Versions))
	e.int(int64(a.Latest))
	e.optTime(a.TrashedAt)
	return e.b
}

// decodeArtifact reads an artifact record, binary or JSON.
func decodeArtifact(raw []byte) (artifact, error) {
	if len(raw) > 0 && raw[0] == '{' {
		return fromJSON[artifact](raw)
	}
	var a artifact
	if len(raw) == 0 || raw[0] != recordV1 {
		return a, errRecord
	}
	d := newDecoder(raw)
	d.i = 1
	a.Stem = d.str()
	a.Key = d.str()
	a.Kind = d.str()
	a.Versions = int(d.int())
	a.Latest = int(d.int())
	a.TrashedAt = d.optTime()
	if err := d.end(); err != nil {
		return artifact{}, err
	}
	return a, nil
}

// fromJSON decodes a record of schema 1. It is a function of its own so
// that the binary path's result stays off the heap.
func fromJSON[T any](raw []byte) (T, error) {
	var x T
	err := json.Unmarshal(raw, &x)
	return x, err
}

// getVersion reads the version uid from the versions bucket.
func getVersion(bk *bolt.Bucket, uid []byte) (Version, bool, error) {
	raw := bk.Get(uid)
	if raw == nil {
		return Version{}, false, nil
	}
	v, err := decodeVersion(raw)
	if err != nil {
		return Version{}, true, fmt.Errorf("catalog: version %s: %w", uid, err)
	}
	return v, true, nil
}

// putVersion writes v and brings its key's listing entry in line.
func putVersion(bk *bolt.Bucket, v Version) error {
	if err := bk.Put([]byte(v.UID), encodeVersion(v)); err != nil {
		return err
	}
	return relist(bk.Tx(), v.Key)
}

// getArtifact reads the artifact stem from the artifacts bucket.
func getArtifact(bk *bolt.Bucket, stem []byte) (artifact, bool, error) {
	raw := bk.Get(stem)
	if raw == nil {
		return artifact{}, false, nil
	}
	a, err := decodeArtifact(raw)
	if err != nil {
		return artifact{}, true, errorf(ErrSchema, "catalog: artifact %s: %v", stem, err)
	}
	return a, true, nil
}

// putArtifact writes a and brings its key's listing entry in line.
func putArtifact(bk *bolt.Bucket, a *artifact) error {
	if err := bk.Put([]byte(a.Stem), encodeArtifact(a)); err != nil {
		return err
	}
	return relist(bk.Tx(), a.Key)
}
