#!/usr/bin/python3
"""Copy pbmc_small.h5ad and replace X by a dense float32 matrix of about
SIZE_GIB GiB (obs and var are kept; the matrix gets as many columns as the
size needs), for measuring that reading obs does not depend on X.

  apt-get install python3-h5py
  /usr/bin/python3 make_big_h5ad.py SRC.h5ad OUT.h5ad [SIZE_GIB]
"""
import shutil
import sys

import h5py
import numpy as np

src, out = sys.argv[1], sys.argv[2]
gib = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
shutil.copyfile(src, out)
with h5py.File(out, "r+") as f:
    n_obs = f["obs"]["_index"].shape[0]
    n_cols = int(gib * (1 << 30) / 4 / n_obs)
    del f["X"]
    x = f.create_dataset("X", shape=(n_obs, n_cols), dtype="float32", chunks=(n_obs, 4096))
    x.attrs["encoding-type"] = "array"
    x.attrs["encoding-version"] = "0.2.0"
    rng = np.random.default_rng(1)
    block = rng.random((n_obs, 4096), dtype=np.float32)
    for start in range(0, n_cols, 4096):
        stop = min(n_cols, start + 4096)
        x[:, start:stop] = block[:, : stop - start]
print(out, n_obs, "x", n_cols)
