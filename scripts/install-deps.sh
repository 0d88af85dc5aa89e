#!/usr/bin/env bash
# Install what firesync needs to build and test on Debian 12 (bookworm).
# Idempotent; run as root (or with sudo).
set -euo pipefail

pkgs=(build-essential autoconf automake libtool pkg-config
      libgrpc-dev libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev
      libssl-dev libjpeg-dev libjpeg-turbo-progs libpng-dev libwebp-dev zlib1g-dev
      libinih-dev libcurl4-openssl-dev libjansson-dev libseccomp-dev check
      libmicrohttpd-dev systemd nginx openssl python3-prometheus-client
      prometheus python-matplotlib-data
      debhelper lintian dpkg-dev)
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

emu=${FIRESTORE_EMULATOR:-/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator}
if [ ! -x "$emu" ]; then
  cat >&2 <<MSG
*** The Firestore emulator is not installed ($emu).
*** Install google-cloud-cli-firestore-emulator from Google's Cloud SDK apt
*** repository (https://cloud.google.com/sdk/docs/install#deb), or point
*** FIRESTORE_EMULATOR at cloud_firestore_emulator.  It needs Java 17+.
MSG
  exit 1
fi

# The zod schema check the integration tests run (the web app's contract)
# is installed by make check into the build tree, with npm.
