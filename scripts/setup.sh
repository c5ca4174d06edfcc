#!/usr/bin/env bash
# Installs every Debian package t2's build and tests need, and the small Python
# environment (.venv: safetensors from PyPI) that the tests' reference checks run
# in. Safe to run twice: what is already there is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git python3 python3-pip python3-venv curl jq
  libopenblas-openmp-dev liblapacke-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev libtomlplusplus-dev
  libsqlite3-dev sqlite3 libicu-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libboost-dev libboost-system-dev
  libopenmpi-dev openmpi-bin
  clang libclang-rt-14-dev
)

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
else
  echo "setup: installing ${missing[*]}"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
fi

# Python's own safetensors reads the expert files t2 writes (a test compares them).
if .venv/bin/python -c "import safetensors, numpy" 2>/dev/null; then
  echo "setup: .venv ready"
else
  echo "setup: creating .venv (safetensors, numpy from PyPI)"
  rm -rf .venv
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    safetensors==0.8.0 numpy==2.4.6
fi
