#!/usr/bin/env bash
# evaluate against the `implicit` library on the same split and metric code
# (issue 28). Usage:
#   benches/implicit_peer.sh ROOT SHOP [AS_OF]      (AS_OF default 2025-10-31)
# Needs a release build of shopfeat and Python with `implicit` and `polars`
# (PYTHON, default python3; e.g. a venv: python3 -m venv v && v/bin/pip install implicit polars).
set -euo pipefail
root=$1 shop=$2 as_of=${3:-2025-10-31T00:00:00Z}
here=$(cd "$(dirname "$0")" && pwd)
bin=${SHOPFEAT_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/shopfeat}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" -q --root "$root" --shop "$shop" evaluate --as-of "$as_of" --write-split "$work/split" --resamples 10 > /dev/null
start=$(date +%s.%N)
"${PYTHON:-python3}" "$here/implicit_peer.py" "$work/split" "$work/lists.parquet"
echo "implicit: $(echo "$(date +%s.%N) - $start" | bc) s to train and rank" >&2
"$bin" --root "$root" --shop "$shop" evaluate --as-of "$as_of" --peer-lists "$work/lists.parquet"
