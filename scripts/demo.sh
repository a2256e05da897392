#!/usr/bin/env bash
# Set up (scripts/setup.sh), then mount the demo bucket: a local OSS server with sample objects,
# mounted at ${1:-/tmp/ossfs-demo}. Ctrl-C unmounts and removes everything the demo made.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ossfs demo "${1:-/tmp/ossfs-demo}"
