#!/usr/bin/env bash
# Prepares this machine for the image's QEMU test and prints the kernel's
# path: installs QEMU (Debian's qemu-system-x86) if it is missing, and
# extracts Debian's cloud kernel (linux-image-*-cloud-amd64: PCI, sysfs,
# devtmpfs and the 8250 console built in) into a cache directory without
# installing it. TCG is enough; KVM is used by nobody here.
#
#   kernel=$(images/qemu.sh) && go test ./images -run TestQEMUBoot -kernel "$kernel" -v
set -euo pipefail

cache="${HVGUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hvguest}"
mkdir -p "$cache"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
updated=""
update() { [ -n "$updated" ] || { $SUDO apt-get update -qq >&2; updated=1; }; }

if ! command -v qemu-system-x86_64 >/dev/null; then
  update
  $SUDO apt-get install -y -qq --no-install-recommends qemu-system-x86 >&2
fi

kernel=$(ls "$cache"/kernel/boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort | tail -n 1 || true)
if [ -z "$kernel" ]; then
  update
  # The meta package names the versioned image package it depends on.
  pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$pkg" ] || { echo "qemu.sh: no linux-image-*-cloud-amd64 package found" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # apt-get download writes to the working directory; the _apt user may
  # not reach it, and apt then downloads as root with a warning.
  (cd "$tmp" && apt-get download "$pkg") >&2
  rm -rf "$cache/kernel"
  dpkg-deb -x "$tmp"/*.deb "$cache/kernel"
  kernel=$(ls "$cache"/kernel/boot/vmlinuz-*-cloud-amd64 | sort | tail -n 1)
fi
echo "$kernel"
