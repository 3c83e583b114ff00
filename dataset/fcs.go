package dataset

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// FCSText is the parsed TEXT segment of an FCS file.
type FCSText struct {
	Version  string            // "FCS3.0", …
	Keywords map[string]string // keys upper-cased as the standard asks
}

// ReadFCSText reads the header and TEXT segment of the FCS 2.0/3.0/3.1
// file at path, checking that the segments the header names lie inside
// the file.
func ReadFCSText(path string) (_ FCSText, err error) {
	defer recoverCorrupt(path, &err)
	f, err := os.Open(path)
	if err != nil {
		return FCSText{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return FCSText{}, err
	}
	size := st.Size()
	head := make([]byte, 58)
	if _, err := io.ReadFull(f, head); err != nil {
		return FCSText{}, corruptf("not an FCS file: the %d-byte file has no complete header", size)
	}
	ver := string(head[:6])
	switch ver {
	case "FCS2.0", "FCS3.0", "FCS3.1", "FCS3.2":
	default:
		return FCSText{}, corruptf("not an FCS file (it starts with %q)", strings.TrimSpace(ver))
	}
	off := func(i int) (int64, error) {
		s := strings.TrimSpace(string(head[10+8*i : 18+8*i]))
		if s == "" {
			return 0, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, corruptf("the FCS header field %d is %q, not an offset", i, s)
		}
		return n, nil
	}
	var o [4]int64
	for i := range o {
		if o[i], err = off(i); err != nil {
			return FCSText{}, err
		}
	}
	tBegin, tEnd := o[0], o[1]
	switch {
	case tEnd <= tBegin:
		return FCSText{}, corruptf("the FCS header is damaged: it says TEXT starts at byte %d and ends at byte %d, before its start", tBegin, tEnd)
	case tBegin < 58:
		return FCSText{}, corruptf("the FCS header is damaged: it says TEXT starts at byte %d, inside the 58-byte header", tBegin)
	case tEnd >= size:
		return FCSText{}, corruptf("the file is truncated: the header says TEXT ends at byte %d and the file has %d bytes", tEnd, size)
	}
	if tEnd-tBegin > 64<<20 {
		return FCSText{}, corruptf("implausible TEXT segment of %d bytes", tEnd-tBegin)
	}
	text := make([]byte, tEnd-tBegin+1)
	if _, err := f.ReadAt(text, tBegin); err != nil {
		return FCSText{}, corruptf("reading TEXT: %v", err)
	}
	kw, err := parseFCSText(text)
	if err != nil {
		return FCSText{}, err
	}
	dBegin, dEnd := o[2], o[3]
	if dBegin == 0 && dEnd == 0 { // FCS 3.x puts large offsets in TEXT
		dBegin, _ = strconv.ParseInt(strings.TrimSpace(kw["$BEGINDATA"]), 10, 64)
		dEnd, _ = strconv.ParseInt(strings.TrimSpace(kw["$ENDDATA"]), 10, 64)
	}
	if dEnd < dBegin {
		return FCSText{}, corruptf("the FCS header is damaged: it says DATA starts at byte %d and ends at byte %d, before its start", dBegin, dEnd)
	}
	if dEnd >= size {
		return FCSText{}, corruptf("the file is truncated: the header says DATA ends at byte %d and the file has %d bytes", dEnd, size)
	}
	return FCSText{Version: ver, Keywords: kw}, nil
}

// parseFCSText splits "/K1/V1/K2/V2/…" where the first byte is the
// delimiter and a doubled delimiter stands for itself.
func parseFCSText(b []byte) (map[string]string, error) {
	if len(b) < 2 {
		return nil, corruptf("empty TEXT segment")
	}
	delim := b[0]
	var fields []string
	var cur strings.Builder
	for i := 1; i < len(b); i++ {
		c := b[i]
		if c != delim {
			cur.WriteByte(c)
			continue
		}
		if i+1 < len(b) && b[i+1] == delim && cur.Len() > 0 {
			// A doubled delimiter inside a value. (An empty value followed
			// by a delimiter is not allowed by the standard, so doubling
			// can only be an escape.)
			cur.WriteByte(c)
			i++
			continue
		}
		fields = append(fields, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		fields = append(fields, cur.String())
	}
	kw := map[string]string{}
	for i := 0; i+1 < len(fields); i += 2 {
		kw[strings.ToUpper(strings.TrimSpace(fields[i]))] = fields[i+1]
	}
	if _, ok := kw["$PAR"]; !ok {
		return nil, corruptf("the TEXT segment has no $PAR keyword")
	}
	return kw, nil
}

func describeFCS(path string) (Info, error) {
	t, err := ReadFCSText(path)
	if err != nil {
		return Info{}, err
	}
	npar, err := strconv.Atoi(strings.TrimSpace(t.Keywords["$PAR"]))
	if err != nil || npar < 0 {
		return Info{}, corruptf("$PAR is %q, not a count", t.Keywords["$PAR"])
	}
	tot, err := strconv.ParseInt(strings.TrimSpace(t.Keywords["$TOT"]), 10, 64)
	if err != nil {
		return Info{}, corruptf("$TOT is %q, not a count", t.Keywords["$TOT"])
	}
	info := Info{OType: "", NObservations: tot, Shape: []int64{tot, int64(npar)}, Metadata: map[string]string{"version": t.Version}}
	for i := 1; i <= npar; i++ {
		info.Columns = append(info.Columns, Column{
			Name:  strings.TrimSpace(t.Keywords[fmt.Sprintf("$P%dN", i)]),
			Label: strings.TrimSpace(t.Keywords[fmt.Sprintf("$P%dS", i)]),
			Dtype: "float",
		})
	}
	for _, k := range []string{"$CYT", "$DATE", "$BTIM", "$ETIM", "$SRC", "$FIL", "$DATATYPE", "$MODE"} {
		if v := strings.TrimSpace(t.Keywords[k]); v != "" {
			info.Metadata[strings.ToLower(strings.TrimPrefix(k, "$"))] = v
		}
	}
	return info, nil
}
