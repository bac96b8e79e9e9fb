#!/usr/bin/env bash
# Fetch Debian's stock amd64 kernel image for the cgroup v2 VM test
# (crates/node/tests/vm): downloads the package the `linux-image-amd64`
# metapackage points to with apt (no install, no initramfs), and extracts its
# vmlinuz to $LLMCHAIN_VM_KERNEL, else $XDG_CACHE_HOME/llmchain/vm/vmlinuz,
# else ~/.cache/llmchain/vm/vmlinuz. Safe to run again: it skips a kernel that
# is already there. Needs a Debian-family machine with apt sources configured.
set -euo pipefail
dest=${LLMCHAIN_VM_KERNEL:-${XDG_CACHE_HOME:-$HOME/.cache}/llmchain/vm/vmlinuz}
if [ -s "$dest" ]; then
    echo "vm-kernel: $dest is already there"
    exit 0
fi
pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ]; then
    echo "vm-kernel: apt knows no linux-image-amd64 package (run apt-get update first)" >&2
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "vm-kernel: downloading $pkg"
(cd "$tmp" && chmod 777 . && apt-get download -q "$pkg" >/dev/null)
dpkg-deb --fsys-tarfile "$tmp"/"$pkg"_*.deb | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
mkdir -p "$(dirname "$dest")"
cp "$tmp"/boot/vmlinuz-* "$dest"
echo "vm-kernel: $(basename "$tmp"/boot/vmlinuz-*) -> $dest"
