#!/usr/bin/env bash
# Install everything ossfs needs on Debian 12 or 13 into ./.venv: system packages (as root,
# through apt) and the Python package with its dev extras; as root also /usr/local/sbin/ossfs, so
# `mount -t fuse.ossfs` and fstab lines work (scripts/install_mount_helper.sh). Safe to run again.
# OSSFS_EXTRA_APT="pkg ..." adds packages (the tests add the peers rclone and s3fs).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages() {
    # fuse3 brings libfuse 3 (libfuse3-3 on Debian 12, libfuse3-4 on 13), which mfusepy binds.
    echo fuse3 attr gcc python3-dev python3-venv ca-certificates ${OSSFS_EXTRA_APT:-}
}

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    missing=()
    if ! apt-cache show fuse3 >/dev/null 2>&1; then
        apt-get update -qq
    fi
    for pkg in $(apt_packages); do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "setup: installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
elif ! [ -e /dev/fuse ]; then
    echo "setup: not root, so no system packages were installed; install fuse3 yourself" >&2
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
pip_quiet() {  # pip and setuptools are chatty; show their output only when they fail
    if ! .venv/bin/python -m pip install -q "$@" >.venv/pip.log 2>&1; then
        cat .venv/pip.log >&2
        return 1
    fi
}
pip_quiet --upgrade pip
pip_quiet -e '.[dev]'
.venv/bin/python -c 'import ossfs.fuse.fuse_ops, oss2, cachetools'
# A fast CRC-64 is required: fastcrc (a dependency; it fails loudly if its wheel did not install).
.venv/bin/python -c 'from ossfs.core.crc64 import require_fast_crc; require_fast_crc()'
if [ "$(id -u)" = 0 ]; then
    bash scripts/install_mount_helper.sh
else
    echo "setup: not root, so mount -t fuse.ossfs is not set up (see docs/fstab.md)"
fi
echo "setup: ready (.venv/bin/ossfs)"
