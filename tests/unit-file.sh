#!/bin/sh
# The systemd unit: systemd-analyze verify is clean and the security
# exposure is at most 2.5 (of 10).
set -eu
: "${abs_top_builddir:?run by make check}"
unit="$abs_top_builddir/systemd/firesyncd.service"
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze not found: apt-get install systemd" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# verify resolves ExecStart=: point it at the built daemon
sed "s|^\(Exec[A-Za-z]*=\)[^ ]*/firesyncd|\1$abs_top_builddir/daemon/firesyncd|" \
  "$unit" > "$tmp/firesyncd.service"
systemd-analyze verify --man=no "$tmp/firesyncd.service"
out=$(systemd-analyze security --offline=true --no-pager "$tmp/firesyncd.service" 2>&1)
score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for firesyncd.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security: exposure $score"
[ -n "$score" ] || { printf '%s\n' "$out"; exit 1; }
awk -v s="$score" 'BEGIN { exit !(s <= 2.5) }' || {
  printf '%s\n' "$out"
  echo "exposure $score is above 2.5" >&2
  exit 1
}
