#!/usr/bin/env bash
# The whole test suite from a fresh clone: set-up, model fetch, build, then every
# ctest label (unit, model, mpi, fuzz). Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fetch-model.sh
bash scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Tests run two at a time on two cores: OpenMP threads must sleep, not spin,
# when they wait, or oversubscribed runs slow down several-fold.
export OMP_WAIT_POLICY=passive
ctest --test-dir build --output-on-failure --parallel "$(nproc)" "$@"
