#!/usr/bin/env bash
# The package boundaries of DESIGN §8 and STYLE.md, checked on the import graph:
# catalog, storage and ontology import no other package of ours (ref, the tiny
# value package, excepted); only fs imports go-fuse; only cmd wires it all.
set -euo pipefail
mod=$(go list -m)
fail=0
for pkg in catalog storage ontology; do
  [ -d "$pkg" ] || continue
  bad=$(go list -f '{{join .Imports "\n"}}' "./$pkg/..." 2>/dev/null | grep "^$mod/" | grep -v "^$mod/ref$" | grep -v "^$mod/$pkg" || true)
  if [ -n "$bad" ]; then echo "$pkg must not import: $bad"; fail=1; fi
done
fuse=$(go list -f '{{.ImportPath}} {{join .Imports " "}}' ./... | grep 'hanwen/go-fuse' | awk '{print $1}' | grep -v "^$mod/fs" || true)
if [ -n "$fuse" ]; then echo "only fs may import go-fuse; also: $fuse"; fail=1; fi
exit $fail
