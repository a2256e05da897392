#!/usr/bin/env bash
# Make `mount -t fuse.ossfs` and fstab lines of type fuse.ossfs run this checkout's ossfs.
#
# mount(8) runs mount.fuse3 (fuse3 package) with PATH reset to
# /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin, and mount.fuse3 runs
# `ossfs SOURCE MOUNTPOINT -o OPTIONS` through /bin/sh: so a symlink /usr/local/sbin/ossfs ->
# .venv/bin/ossfs is all it takes (first on that PATH, and on root's, not on other users').
#
# Run by scripts/setup.sh as root; safe to run again. Says in one line what it did. A symlink
# there (to another checkout, or dangling) is replaced in one step; anything else is left alone.
# OSSFS_HELPER_DIR: another directory than /usr/local/sbin (the tests use a temporary one).
set -euo pipefail
cd "$(dirname "$0")/.."
target="$PWD/.venv/bin/ossfs"
dir=${OSSFS_HELPER_DIR:-/usr/local/sbin}
link="$dir/ossfs"

if [ ! -x "$target" ]; then
    echo "setup: $target is missing: run scripts/setup.sh first" >&2
    exit 1
fi
if [ -L "$link" ] && [ "$(readlink "$link")" = "$target" ]; then
    echo "setup: mount -t fuse.ossfs runs $link -> $target (already installed)"
elif [ -e "$link" ] && [ ! -L "$link" ]; then
    echo "setup: $link is not a symlink, so it was left alone and mount -t fuse.ossfs runs it;" \
        "remove it and run setup again to use $target" >&2
else
    mkdir -p "$dir"
    # A new link renamed over the old one: a mount starting meanwhile finds one or the other.
    tmp="$link.setup-$$"
    ln -s "$target" "$tmp"
    mv -Tf "$tmp" "$link"
    echo "setup: installed $link -> $target (mount -t fuse.ossfs and fstab lines run it)"
fi
