package instance

import (
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/dataset"
)

// describe fills the fields of nv that reading the content gives: otype,
// n_observations, shape and columns. A format lamina does not read, or a
// truncated or corrupt file, keeps the fields the suffix gave: it is still
// saved, as a plain file.
func describe(nv *catalog.NewVersion, path string) {
	if dataset.DetectFormat(path) == "" {
		return
	}
	info, err := dataset.Describe(path)
	if err != nil {
		return
	}
	if info.OType != "" {
		nv.OType = info.OType
	}
	nv.NObservations = info.NObservations
	nv.Shape = info.Shape
	for i, c := range info.Columns {
		if i == catalog.MaxColumns {
			break
		}
		nv.Columns = append(nv.Columns, catalog.Column{Name: c.Name, Slot: c.Slot, Dtype: c.Dtype, Label: c.Label})
	}
}
