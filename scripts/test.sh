#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run every check: ruff, mypy --strict, and the whole test suite,
# real FUSE mounts included. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# rclone and s3fs: the peers that tests/emulator/test_s3_peers.py mounts on the S3 dialect.
OSSFS_EXTRA_APT="rclone s3fs" bash scripts/setup.sh
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
echo "== ruff"; .venv/bin/ruff check .
echo "== ruff format"; .venv/bin/ruff format --check --quiet . || { echo "run: .venv/bin/ruff format ." >&2; exit 1; }
echo "== mypy"; .venv/bin/mypy
# --durations: the slowest tests are listed, so a test that grew slow is seen.
echo "== pytest"; .venv/bin/python -m pytest -q --durations=15 "$@"
