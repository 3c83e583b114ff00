package catalog

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/ref"
)

// The codec is internal to the bbolt store, so these tests are too.

func sampleVersions() []Version {
	at := time.Date(2026, 3, 4, 5, 6, 7, 890123456, time.UTC)
	trashed := at.Add(time.Hour)
	return []Version{
		{},
		{UID: "AbCdEfGhIjKlMnOp0000", Key: "scrna/batch1.h5ad", Version: 1, Kind: "file", Suffix: ".h5ad",
			OType: "AnnData", NObservations: 2700, Shape: []int64{2700, 32738},
			Columns: []Column{{Name: "cell_type", Slot: "obs", Dtype: "cat"}, {Name: "FSC-A", Dtype: "float", Label: "forward scatter"}},
			Size:    123456789, Digest: ref.Sum([]byte("x")), Manifest: "packs/ab/cd", Description: "PBMC, donor 7 — ünïcode",
			CreatedBy: "ana", CreatedAt: at, Mtime: at.Add(-time.Minute), Run: "RuNuIdRuNuIdRuNu0000", Mode: 0o640},
		{UID: "AbCdEfGhIjKlMnOp0001", Key: "folder/", Version: 62, Kind: "folder", NFiles: 3, Size: -1,
			CreatedAt: time.Unix(-62135596800, 0).UTC(), Trashed: true, TrashedAt: &trashed},
		{UID: "AbCdEfGhIjKlMnOp0002", Key: "scrna/batch1.h5ad", Version: 3, Kind: "file", Suffix: ".h5ad",
			Size: 7, Digest: ref.Sum([]byte("y")), CreatedBy: "ana", CreatedAt: at, Mtime: at, Revises: "AbCdEfGhIjKlMnOp0000"},
	}
}

// A version that revises none is written in the first format, which
// builds from before revises read; one that does records its uid.
func TestVersionRecordRevises(t *testing.T) {
	for _, v := range sampleVersions() {
		raw := encodeVersion(v)
		want := byte(recordV1)
		if v.Revises != "" {
			want = recordV2
		}
		if raw[0] != want {
			t.Errorf("%q: format %#x, want %#x", v.Key, raw[0], want)
		}
	}
	v := sampleVersions()[1]
	v.Revises = "x"
	raw := encodeVersion(v)
	raw = append(raw[:len(raw)-2], 0) // revises "": not an encoding anything writes
	if _, err := decodeVersion(raw); err == nil {
		t.Fatal("a format 2 record with an empty revises decoded")
	}
}

func TestVersionRecordRoundTrip(t *testing.T) {
	for _, v := range sampleVersions() {
		raw := encodeVersion(v)
		got, err := decodeVersion(raw)
		if err != nil {
			t.Fatalf("%s: %v", v.Key, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, v)
		}
		js, _ := json.Marshal(v)
		if len(raw) >= len(js)*2/3 {
			t.Errorf("%q: binary record %d bytes, JSON %d: not compact", v.Key, len(raw), len(js))
		}
		// What catalogs of schema 1 hold reads the same.
		fromJSON, err := decodeVersion(js)
		if err != nil || !reflect.DeepEqual(canonical(fromJSON), v) {
			t.Fatalf("JSON record: %+v, %v", fromJSON, err)
		}
		// Every truncation is an error, not a panic or a short record.
		for i := range raw {
			if _, err := decodeVersion(raw[:i]); err == nil {
				t.Fatalf("%q cut to %d bytes decoded", v.Key, i)
			}
		}
		if _, err := decodeVersion(append(raw, 0)); err == nil {
			t.Fatalf("%q with a trailing byte decoded", v.Key)
		}
	}
}

func TestArtifactRecordRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	for _, a := range []artifact{{}, {Stem: "AbCdEfGhIjKlMnOp", Key: "a/b.csv", Kind: "file", Versions: 3, Latest: 2},
		{Stem: "AbCdEfGhIjKlMnOq", Key: "x", Kind: "folder", Versions: 1, TrashedAt: &at}} {
		got, err := decodeArtifact(encodeArtifact(&a))
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, a)
		}
		js, _ := json.Marshal(a)
		if got, err := decodeArtifact(js); err != nil || !reflect.DeepEqual(got, a) {
			t.Fatalf("JSON record: %+v, %v; want %+v", got, err, a)
		}
	}
	if _, err := decodeArtifact([]byte{0x7f, 1, 2}); err == nil {
		t.Fatal("unknown format byte decoded")
	}
}

// canonical is v as a binary record keeps it: times in UTC, empty lists
// as nil (JSON omits both alike).
func canonical(v Version) Version {
	v.CreatedAt, v.Mtime = v.CreatedAt.UTC(), v.Mtime.UTC()
	if v.TrashedAt != nil {
		t := v.TrashedAt.UTC()
		v.TrashedAt = &t
	}
	if len(v.Shape) == 0 {
		v.Shape = nil
	}
	if len(v.Columns) == 0 {
		v.Columns = nil
	}
	return v
}

// FuzzVersionRecord: any input decodes to a version or an error (never a
// panic), and what decodes survives encoding and decoding again.
func FuzzVersionRecord(f *testing.F) {
	for _, v := range sampleVersions() {
		f.Add(encodeVersion(v))
		js, _ := json.Marshal(v)
		f.Add(js)
	}
	f.Add([]byte{recordV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, err := decodeVersion(raw)
		if err != nil {
			return
		}
		again, err := decodeVersion(encodeVersion(v))
		if err != nil {
			t.Fatalf("re-encoded record: %v", err)
		}
		if !reflect.DeepEqual(again, canonical(v)) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", again, canonical(v))
		}
	})
}

// FuzzArtifactRecord is FuzzVersionRecord for artifact records.
func FuzzArtifactRecord(f *testing.F) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	a := artifact{Stem: "AbCdEfGhIjKlMnOp", Key: "a/b.csv", Kind: "file", Versions: 3, Latest: 2, TrashedAt: &at}
	f.Add(encodeArtifact(&a))
	js, _ := json.Marshal(a)
	f.Add(js)
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := decodeArtifact(raw)
		if err != nil {
			return
		}
		if a.TrashedAt != nil {
			u := a.TrashedAt.UTC()
			a.TrashedAt = &u
		}
		enc := encodeArtifact(&a)
		again, err := decodeArtifact(enc)
		if err != nil || !reflect.DeepEqual(again, a) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, a)
		}
		if !bytes.Equal(encodeArtifact(&again), enc) {
			t.Fatal("encoding is not stable")
		}
	})
}

// BenchmarkDecodeVersion compares the two record forms of one version as
// Save writes it (no columns).
func BenchmarkDecodeVersion(b *testing.B) {
	v := sampleVersions()[1]
	v.Columns, v.Shape = nil, nil
	js, _ := json.Marshal(v)
	for _, c := range []struct {
		name string
		raw  []byte
	}{{"json", js}, {"binary", encodeVersion(v)}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := decodeVersion(c.raw); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(c.raw)), "record-bytes")
		})
	}
}
