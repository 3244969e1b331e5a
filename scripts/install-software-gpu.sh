#!/usr/bin/env bash
# Makes a WebGPU adapter available to dawn.node on a Linux machine without a GPU by installing
# Mesa's software Vulkan driver (lavapipe) and the Vulkan loader.
#
#   Debian bookworm      : mesa-vulkan-drivers from bookworm-backports (Mesa >= 23). The bookworm 22.3
#                          build is rejected by Dawn ("shaderUniform*ArrayDynamicIndexing required").
#   Debian trixie+/Ubuntu >= 24.04 : the distribution's own packages.
#
# Idempotent: exits at once when an adapter is already found. Needs root (or sudo) to install.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
say() { printf '[install-software-gpu] %s\n' "$*"; }
die() { printf '[install-software-gpu] ERROR: %s\n' "$*" >&2; exit 1; }

probe_adapter() {
  # Prints the adapter description and exits 0 when dawn.node finds one.
  (cd "$root" && node scripts/probe-adapter.mjs) 2>/dev/null
}

if [ ! -d "$root/node_modules/webgpu" ]; then
  say "node_modules/webgpu is missing; run 'npm install' (or 'npm ci') first so the adapter can be probed."
  say "continuing with the driver install; the adapter check runs at the end only if webgpu is installed."
elif desc="$(probe_adapter)"; then
  say "a WebGPU adapter is already available: $desc"
  exit 0
fi

[ "$(uname -s)" = "Linux" ] || die "only Linux is handled here (found $(uname -s)); install a Vulkan, Metal or D3D12 driver for your system."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "installing packages needs root; re-run as root or install sudo."
  SUDO="sudo"
fi
command -v apt-get >/dev/null 2>&1 || die "no apt-get: install Mesa >= 23 'lavapipe' (package usually called mesa-vulkan-drivers or vulkan-swrast) and the Vulkan loader (libvulkan1) with your package manager."

. /etc/os-release
export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q --no-install-recommends)

mesa_version() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true; }

case "${ID}:${VERSION_CODENAME:-}" in
  debian:bookworm)
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      say "enabling bookworm-backports (Mesa >= 23 lives there)"
      echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    fi
    say "apt-get update"
    $SUDO apt-get update -q >/dev/null
    say "installing mesa-vulkan-drivers and libvulkan1 from bookworm-backports"
    $SUDO apt-get install "${APT_OPTS[@]}" -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
    ;;
  debian:*|ubuntu:*)
    if [ "$ID" = "ubuntu" ]; then
      major="${VERSION_ID%%.*}"
      [ "$major" -ge 24 ] || die "Ubuntu $VERSION_ID ships Mesa < 23, which Dawn rejects; use Ubuntu >= 24.04 or install a newer Mesa (e.g. the kisak-mesa PPA)."
    fi
    say "apt-get update"
    $SUDO apt-get update -q >/dev/null
    say "installing mesa-vulkan-drivers and libvulkan1 from ${PRETTY_NAME:-$ID}"
    $SUDO apt-get install "${APT_OPTS[@]}" mesa-vulkan-drivers libvulkan1 >/dev/null
    ;;
  *)
    die "unsupported distribution ${PRETTY_NAME:-$ID}: install Mesa >= 23 lavapipe and libvulkan1 yourself."
    ;;
esac

v="$(mesa_version)"
say "mesa-vulkan-drivers ${v:-?} installed"
case "$v" in
  22.*|21.*|20.*) die "Mesa $v is too old for Dawn (needs >= 23)." ;;
esac

if [ -d "$root/node_modules/webgpu" ]; then
  if desc="$(probe_adapter)"; then
    say "WebGPU adapter found: $desc"
  else
    (cd "$root" && node scripts/probe-adapter.mjs) || true
    die "the driver is installed but dawn.node still finds no adapter (see the message above)."
  fi
fi
