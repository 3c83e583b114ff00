package instance

import (
	"fmt"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/dataset"
)

// describe fills the fields of nv that reading the content gives: otype,
// n_observations, shape and columns. The key's suffix names the format the
// content is read as (as the mount does), whatever the local file's name.
// A format lamina does not read keeps the fields the suffix gave. A
// truncated or corrupt file, or one the key's suffix misnames (a CSV saved
// as y.h5ad), is still saved, as a plain file: no otype (its suffix claims
// one its bytes are not), and the note says why.
func describe(nv *catalog.NewVersion, path string) (note string) {
	format := dataset.DetectFormatAs(path, nv.Key)
	if format == "" {
		// A .zarr folder that cannot say whether it holds an AnnData.
		if err := dataset.CheckZarrAs(path, nv.Key); err != nil {
			nv.OType = ""
			return fmt.Sprintf("not a readable zarr store (%v): saved as a plain folder, without an otype", err)
		}
	}
	return Describe(nv, path, format)
}

// Describe is describe of the file at path read as format (dataset's
// names; "" reads nothing): the mount describes a staged file by its key.
func Describe(nv *catalog.NewVersion, path, format string) (note string) {
	if format == "" {
		return ""
	}
	info, err := dataset.DescribeAs(path, format)
	if err != nil {
		nv.OType = ""
		return fmt.Sprintf("not a readable %s (%v): saved as a plain file, without an otype", format, err)
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
	return ""
}
