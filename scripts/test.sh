#!/usr/bin/env bash
# The whole test suite: unit and integration tests (against the official
# Firestore emulator), in a normal -Werror build and again under
# AddressSanitizer + UndefinedBehaviorSanitizer; then a short soak, a short
# run of each libFuzzer target, make distcheck and the Debian packages.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/install-deps.sh"
[ -x configure ] || autoreconf -fi

jobs=$(nproc)
status=0
failed=()	# logs of failed tests, shown again at the end where they are seen

run_suite() {	# name, configure args...
  local name=$1; shift
  echo "=== $name build ==="
  mkdir -p "build/$name"
  (cd "build/$name" && "$top/configure" --enable-werror "$@" >configure.out ||
     { cat configure.out; exit 1; })
  make -C "build/$name" -j"$jobs" >"build/$name/make.out" 2>&1 ||
     { cat "build/$name/make.out"; return 1; }
  echo "=== $name tests ==="
  local rc=0
  make -C "build/$name" check >"build/$name/check.out" 2>&1 || rc=$?
  local logs=("build/$name"/tests/*.log)
  if [ ! -e "${logs[0]}" ]; then
    tail -40 "build/$name/check.out"   # the tests did not even build
  fi
  for log in "${logs[@]}"; do
    [ -e "$log" ] || continue
    echo "--- $log"
    cat "$log"
  done
  grep -E '^(# (TOTAL|PASS|FAIL|ERROR|SKIP|XFAIL|XPASS)|PASS|FAIL|ERROR):' "build/$name/check.out" || true
  local trs
  for trs in "build/$name"/tests/*.trs; do
    [ -e "$trs" ] || continue
    grep -qE '^:test-result: (FAIL|ERROR|XPASS)' "$trs" && failed+=("${trs%.trs}.log")
  done
  return $rc
}

run_suite plain || status=1

san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export LSAN_OPTIONS=suppressions=$top/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite sanitize CFLAGS="-O1 -g $san" LDFLAGS="$san" || status=1

# The fault-injection soak, briefly (make soak runs it for 30 minutes):
# three daemons through a faulty proxy, kills, an emulator restart.
echo "=== soak (60 s) ==="
build/plain/tests/soak --seconds 60 --rate 3 || status=1

# The fuzzers, briefly (make fuzz runs each for 10 minutes): clang builds
# them with ASan and UBSan when it is installed.
if grep -q '^FUZZ_CC = .' build/plain/Makefile; then
  echo "=== fuzz (10 s a target) ==="
  make -s -C build/plain fuzz FUZZ_SECONDS=10 || { echo "fuzz: FAILED"; status=1; }
fi

# The release route: the tarball builds and passes the whole suite from a
# read-only source tree, and the Debian packages build from it, pass
# lintian, install, work and purge (as root).
echo "=== make distcheck ==="
if make -C build/plain distcheck >build/plain/distcheck.out 2>&1; then
  grep -A2 'archives ready for distribution' build/plain/distcheck.out
else
  grep -E '^(# (TOTAL|PASS|FAIL|ERROR)|FAIL|ERROR):' build/plain/distcheck.out || true
  tail -60 build/plain/distcheck.out
  # which checks failed, from the tree distcheck leaves (the packages'
  # make dist below removes it)
  grep -h -E ':[0-9]+:[FE]:' build/plain/firesync-*/_build/sub/tests/*.log \
    2>/dev/null | head -20 || true
  echo "distcheck: FAILED"
  status=1
fi
if [ "$(id -u)" = 0 ]; then
  echo "=== Debian packages ==="
  make -s -C build/plain package-check >build/plain/package.out 2>&1 &&
    grep -E '^(== |package: )' build/plain/package.out ||
    { tail -60 build/plain/package.out; echo "package-check: FAILED"; status=1; }
else
  echo "=== Debian packages: skipped (make package-check installs them: run as root) ==="
fi

for log in "${failed[@]}"; do
  echo "=== failed: $log (last 200 lines) ==="
  tail -200 "$log"
done
if [ $status -eq 0 ]; then echo "ALL TESTS PASSED"; else echo "TESTS FAILED"; fi
exit $status
