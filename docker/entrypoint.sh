#!/usr/bin/env bash
# Entrypoint of the cuzarr benchmark image (see docker/README.md).
#
#   entrypoint.sh [bench args...]        python -m bench --out $RESULTS_DIR --data $DATA_DIR ...
#   entrypoint.sh gpu-check [args...]    python -m bench gpu-check --out $RESULTS_DIR/gpu ...
#
# Environment: RESULTS_DIR (default /results), DATA_DIR (default /data), BENCH_QUICK=1 (adds
# --quick), PYTHON (default python3). PYTHON and the two folders make it runnable outside the
# container too (tests/test_container.py), from a checkout whose bench package is importable.
# Python is exec'd, so it receives docker's signals itself (the image sets STOPSIGNAL SIGINT,
# which the suite handles by stopping its workers).
set -euo pipefail

PYTHON="${PYTHON:-python3}"
RESULTS_DIR="${RESULTS_DIR:-/results}"
DATA_DIR="${DATA_DIR:-/data}"
BENCH_QUICK="${BENCH_QUICK:-}"

die() {
  printf 'cuzarr-bench: error: %s\n' "$*" >&2
  exit 2
}

# Checked before the run rather than found out after it: a suite that has run for minutes and
# cannot write its results has wasted the machine. A probe file rather than `test -w`, so
# read-only mounts and root-squashed NFS are caught as well.
require_writable() {
  local name="$1" dir="$2" probe
  [ -n "$dir" ] || die "$name is empty; set it to a writable folder"
  if ! mkdir -p -- "$dir" 2>/dev/null; then
    die "$name=$dir cannot be created (is a parent a file, or read-only?);" \
      "mount a writable host folder there, e.g. -v \"\$PWD/out:$dir\""
  fi
  if ! probe="$(mktemp -p "$dir" .cuzarr-write-probe.XXXXXX 2>/dev/null)"; then
    die "$name=$dir is not writable by uid $(id -u); make the host folder writable for it," \
      "or run the container with --user \"\$(id -u):\$(id -g)\""
  fi
  rm -f -- "$probe"
}

if [ "${1:-}" = "gpu-check" ]; then
  shift
  require_writable RESULTS_DIR "$RESULTS_DIR"
  printf 'cuzarr-bench: GPU check results go to %s\n' "$RESULTS_DIR/gpu" >&2
  exec "$PYTHON" -m bench gpu-check --out "$RESULTS_DIR/gpu" "$@"
fi

case "$BENCH_QUICK" in
  "" | 0 | false | no) ;;
  1 | true | yes) set -- --quick "$@" ;;
  *) die "BENCH_QUICK=$BENCH_QUICK: use 1 to add --quick, or 0" ;;
esac

# Our --out/--data come first, so an explicit --out or --data argument wins (argparse keeps the
# last); find the folders the run will really use, to check and announce those.
results="$RESULTS_DIR" results_name=RESULTS_DIR
data="$DATA_DIR" data_name=DATA_DIR
prev=""
for arg in "$@"; do
  case "$prev" in
    --out) results="$arg" results_name=--out ;;
    --data) data="$arg" data_name=--data ;;
  esac
  case "$arg" in
    --out=*) results="${arg#--out=}" results_name=--out ;;
    --data=*) data="${arg#--data=}" data_name=--data ;;
  esac
  prev="$arg"
done

require_writable "$results_name" "$results"
require_writable "$data_name" "$data"
printf 'cuzarr-bench: results go to %s; dataset in %s (made on first use, then reused)\n' \
  "$results" "$data" >&2
exec "$PYTHON" -m bench --out "$RESULTS_DIR" --data "$DATA_DIR" "$@"
