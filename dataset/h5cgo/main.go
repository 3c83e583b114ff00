//go:build h5cgo

// Command h5cgo measures reading the obs and var tables of an h5ad file
// with Debian's libhdf5 through cgo against package dataset's pure-Go
// reader (docs/annotate.md). It is built only with the h5cgo tag:
//
//	apt-get install libhdf5-dev
//	go run -tags h5cgo ./dataset/h5cgo FILE.h5ad [ITERATIONS]
package main

/*
#cgo CFLAGS: -I/usr/include/hdf5/serial
#cgo LDFLAGS: -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5
#include <hdf5.h>
#include <stdlib.h>

// read_values reads a 1-D dataset: strings are reclaimed, numbers read as
// double; it returns the element count or -1.
static long read_values(hid_t d) {
	hid_t sp = H5Dget_space(d);
	hssize_t n = H5Sget_simple_extent_npoints(sp);
	hid_t ft = H5Dget_type(d);
	long out = (long)n;
	if (H5Tget_class(ft) == H5T_STRING) {
		hid_t mt = H5Tcopy(H5T_C_S1);
		H5Tset_size(mt, H5T_VARIABLE);
		char **buf = malloc(sizeof(char*) * (n ? n : 1));
		if (H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) out = -1;
		else H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, buf);
		free(buf);
		H5Tclose(mt);
	} else {
		double *buf = malloc(sizeof(double) * (n ? n : 1));
		if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) out = -1;
		free(buf);
	}
	H5Tclose(ft);
	H5Sclose(sp);
	return out;
}

// read_frame reads every column of a dataframe group (categoricals:
// codes and categories) and returns the number of values read.
static long read_frame(hid_t f, const char *name) {
	hid_t g = H5Gopen2(f, name, H5P_DEFAULT);
	if (g < 0) return -1;
	H5G_info_t info;
	H5Gget_info(g, &info);
	long total = 0;
	char member[256];
	for (hsize_t i = 0; i < info.nlinks; i++) {
		H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, member, sizeof member, H5P_DEFAULT);
		H5O_info_t oi;
		H5Oget_info_by_name(g, member, &oi, H5P_DEFAULT);
		if (oi.type == H5O_TYPE_GROUP) {
			hid_t c = H5Gopen2(g, member, H5P_DEFAULT);
			hid_t codes = H5Dopen2(c, "codes", H5P_DEFAULT);
			hid_t cats = H5Dopen2(c, "categories", H5P_DEFAULT);
			total += read_values(codes) + read_values(cats);
			H5Dclose(codes); H5Dclose(cats); H5Gclose(c);
		} else {
			hid_t d = H5Dopen2(g, member, H5P_DEFAULT);
			total += read_values(d);
			H5Dclose(d);
		}
	}
	H5Gclose(g);
	return total;
}

static long read_obs_var(const char *path) {
	hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (f < 0) return -1;
	long n = read_frame(f, "obs") + read_frame(f, "var");
	H5Fclose(f);
	return n;
}
*/
import "C"

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"
	"unsafe"

	"github.com/lamina-bio/lamina/dataset"
)

func main() {
	path := os.Args[1]
	iters := 200
	if len(os.Args) > 2 {
		iters, _ = strconv.Atoi(os.Args[2])
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	measure := func(name string, fn func() error) {
		var ds []time.Duration
		for i := 0; i < iters; i++ {
			start := time.Now()
			if err := fn(); err != nil {
				fmt.Println(name, err)
				os.Exit(1)
			}
			ds = append(ds, time.Since(start))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		fmt.Printf("%-28s median %8s  p90 %8s  (%d runs)\n", name, ds[len(ds)/2], ds[len(ds)*9/10], iters)
	}
	measure("cgo libhdf5 obs+var", func() error {
		if C.read_obs_var(cpath) < 0 {
			return fmt.Errorf("libhdf5 failed")
		}
		return nil
	})
	measure("pure Go dataset.Tables", func() error {
		_, err := dataset.Tables(path)
		return err
	})
	measure("pure Go dataset.Describe", func() error {
		_, err := dataset.Describe(path)
		return err
	})
}
