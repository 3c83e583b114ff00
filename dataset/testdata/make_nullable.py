#!/usr/bin/python3
"""Write nullable.h5ad and nullable.zarr (the fixtures of TestNullableColumns):
two cells whose obs has categoricals cell_type and tissue, the pandas Int64
column n and boolean column f with a missing value each (anndata writes them
as groups of values and mask, encoding-type nullable-integer and
nullable-boolean), then, added with h5py and zarr as newer anndata writes
them, a nullable-string-array column s and a group u of an encoding-type
lamina does not read (awkward-array).

  apt-get install python3-anndata python3-h5py python3-zarr
  cd dataset/testdata && /usr/bin/python3 make_nullable.py

Made with anndata 0.8.0, h5py 3.7.0, zarr 2.13.6 (Debian).
"""
import shutil

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import zarr

obs = pd.DataFrame(
    {
        "cell_type": pd.Categorical(["T cell", "B cell"]),
        "tissue": pd.Categorical(["blood"] * 2),
        "n": pd.array([1, None], dtype="Int64"),
        "f": pd.array([True, None], dtype="boolean"),
    },
    index=["a", "b"],
)
a = ad.AnnData(X=np.ones((2, 2), "float32"), obs=obs)
a.write_h5ad("nullable.h5ad")
shutil.rmtree("nullable.zarr", ignore_errors=True)
a.write_zarr("nullable.zarr")


def add(obs, strings):
    s = obs.create_group("s")
    s.attrs["encoding-type"] = "nullable-string-array"
    s.attrs["encoding-version"] = "0.1.0"
    s.create_dataset("values", data=np.array(["x", ""], dtype=object), dtype=strings, **({"object_codec": __import__("numcodecs").VLenUTF8()} if strings is str else {}))
    s.create_dataset("mask", data=np.array([False, True]))
    u = obs.create_group("u")
    u.attrs["encoding-type"] = "awkward-array"
    u.attrs["encoding-version"] = "0.1.0"
    u.create_dataset("node0-data", data=np.array([1, 2], dtype="int64"))
    obs.attrs["column-order"] = list(obs.attrs["column-order"]) + ["s", "u"]


with h5py.File("nullable.h5ad", "r+") as f:
    add(f["obs"], h5py.string_dtype())
    f["obs"].attrs["column-order"] = np.array(f["obs"].attrs["column-order"], dtype=h5py.string_dtype())
add(zarr.open_group("nullable.zarr", "r+")["obs"], str)
