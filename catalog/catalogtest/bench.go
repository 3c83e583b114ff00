package catalogtest

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

var tissues = []string{"blood", "bone marrow", "lymph node", "lung", "liver", "spleen", "kidney", "heart", "brain", "skin"}

// cellTypes: a T cell, two of its descendants, and others.
var cellTypes = []string{"CL:0000084", "CL:0000624", "CL:0000625", "CL:0000236", "CL:0000576", "CL:0000623", "CL:0000233", "CL:0000451"}

// BuildAnnotated writes a catalog of n versions (n keys under 100
// folders), each with 5 feature values (tissue, condition, batch, score,
// day), 3 labels and 2 cell-type terms, at path. Keys
// scrna/f07/k000123.h5ad; descriptions mention PBMC for a tenth.
func BuildAnnotated(tb testing.TB, path string, n int) {
	ctx := context.Background()
	c, err := catalog.OpenBolt(path, catalog.BoltOptions{Hold: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	for _, f := range []catalog.Feature{{Name: "tissue", Dtype: "cat[tissue]"}, {Name: "condition", Dtype: "cat"},
		{Name: "batch", Dtype: "int"}, {Name: "score", Dtype: "float"}, {Name: "day", Dtype: "date"}} {
		if _, err := c.CreateFeature(ctx, f); err != nil {
			tb.Fatal(err)
		}
	}
	for _, l := range []string{"treated", "control", "quality", "high_quality", "low_quality", "pilot", "qc_passed"} {
		if _, err := c.CreateLabel(ctx, catalog.Label{Name: l}); err != nil {
			tb.Fatal(err)
		}
	}
	const chunk = 10000
	now := time.Now()
	for start := 0; start < n; start += chunk {
		var nvs []catalog.NewVersion
		for i := start; i < min(n, start+chunk); i++ {
			key := fmt.Sprintf("scrna/f%02d/k%06d.h5ad", i%100, i)
			desc := "single-cell run " + strconv.Itoa(i)
			if i%10 == 0 {
				desc = "PBMC gene expression, donor " + strconv.Itoa(i%37)
			}
			nvs = append(nvs, catalog.NewVersion{Key: key, Kind: "file", Suffix: ".h5ad", OType: "AnnData",
				Digest: ref.Sum([]byte(key)), Manifest: "m", Size: int64(1000 + i*100), Description: desc,
				CreatedBy: "bench", CreatedAt: now.Add(time.Duration(i) * time.Second), Mtime: now})
		}
		saved, err := c.Save(ctx, nvs)
		if err != nil {
			tb.Fatal(err)
		}
		var adds []catalog.Annotations
		for k, s := range saved {
			i := start + k
			adds = append(adds, catalog.Annotations{UID: s.Version.UID,
				Features: map[string][]string{
					"tissue": {tissues[i%len(tissues)]}, "condition": {[]string{"treated", "control"}[i%2]},
					"batch": {strconv.Itoa((i / 7) % 10)}, "score": {strconv.FormatFloat(float64(i%1000)/10, 'f', 1, 64)},
					"day": {now.AddDate(0, 0, -(i % 365)).Format("2006-01-02")},
				},
				Labels: []string{[]string{"treated", "control"}[i%2], []string{"high_quality", "low_quality", "quality"}[i%3], []string{"pilot", "qc_passed"}[i%2]},
				Terms:  []catalog.Term{{Entity: "celltype", ID: cellTypes[i%len(cellTypes)]}, {Entity: "celltype", ID: cellTypes[(i+3)%len(cellTypes)]}},
			})
		}
		if err := c.AnnotateBatch(ctx, adds); err != nil {
			tb.Fatal(err)
		}
	}
}
