package ref

import (
	"path/filepath"
	"strings"
)

// Suffix returns a file name's suffix as LaminDB records it: the last
// extension, or the last two where the last is a compression (".csv.gz").
func Suffix(name string) string {
	name = strings.TrimSuffix(name, "/")
	base := filepath.Base(name)
	ext := filepath.Ext(base)
	switch ext {
	case ".gz", ".zst", ".bz2", ".xz", ".zip":
		if inner := filepath.Ext(strings.TrimSuffix(base, ext)); inner != "" && len(inner) <= 8 {
			return inner + ext
		}
	}
	if ext == base {
		return ""
	}
	return ext
}

// OType guesses the data object type from the suffix (the curation issue
// reads the files themselves), in any case, as save reads the format
// (dataset.FileFormat): .CSV is a DataFrame.
func OType(suffix string) string {
	switch strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(suffix), ".gz"), ".zst") {
	case ".csv", ".tsv", ".parquet":
		return "DataFrame"
	case ".h5ad":
		return "AnnData"
	case ".zarr":
		return "" // AnnData or SpatialData; only reading it can tell
	}
	return ""
}

// RenamedOType is the otype of a version of otype with suffix from that a
// rename gives suffix to (neither reads the bytes), as a save at the new
// key would give it. A folder's otype comes from its content (a zarr
// group's .zattrs), so it stays unless to names another known type: an
// AnnData zarr folder pbmc renamed pbmc.zarr (.zarr names none: AnnData
// or SpatialData), or q.zarr renamed q. A file's format comes from its
// name: under a suffix that names none it has none (t.csv renamed t);
// under one of the same type as from (case folded: e.csv renamed f.CSV,
// as save reads .CSV) it keeps its own (a MuData .h5ad). Bytes of a
// known type under a suffix naming another (p.h5ad renamed p.csv) have
// none, as save gives a file its suffix misnames; a version without one
// takes to's (t.csv.tmp renamed t.csv).
func RenamedOType(otype, from, to string, folder bool) string {
	guess := OType(to)
	switch {
	case otype == "":
		return guess
	case guess == "":
		if folder {
			return otype
		}
		return ""
	case guess == OType(from) || guess == otype:
		return otype
	}
	return ""
}
