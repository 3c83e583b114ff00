package dataset

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
)

// SetH5Filter returns the bytes of the h5ad at path with the first filter
// of the dataset SLOT/COLUMN's pipeline given the id (32000: LZF), as
// h5py writes a column with compression="lzf".
func SetH5Filter(path, slot, column string, id uint16) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	h, err := openHDF5(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	root, err := h.object(h.root, "/")
	if err != nil {
		return nil, err
	}
	g, err := h5node{root}.child(slot)
	if err != nil {
		return nil, err
	}
	c, err := g.child(column)
	if err != nil {
		return nil, err
	}
	o := c.(h5node).o
	m := o.msg(msgFilters)
	if len(m) < 10 || m[0] != 1 {
		return nil, fmt.Errorf("%s/%s has no version 1 filter pipeline", slot, column)
	}
	// The message as stored, in the dataset's own object header.
	at := bytes.Index(b[o.addr:], m)
	if at < 0 {
		return nil, fmt.Errorf("%s/%s: filter pipeline not found", slot, column)
	}
	binary.LittleEndian.PutUint16(b[int(o.addr)+at+8:], id)
	return b, nil
}
