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
// reads the files themselves).
func OType(suffix string) string {
	switch strings.TrimSuffix(strings.TrimSuffix(suffix, ".gz"), ".zst") {
	case ".csv", ".tsv", ".parquet":
		return "DataFrame"
	case ".h5ad":
		return "AnnData"
	case ".zarr":
		return "" // AnnData or SpatialData; only reading it can tell
	}
	return ""
}
