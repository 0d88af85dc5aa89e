#!/bin/sh
# The alerting rules an admin installs (examples/firesync-alerts.yml) are
# valid, and fire when they should: promtool check rules, then promtool
# test rules with tests/alerts-test.yml.
set -eu
srcdir=${srcdir:-.}
if ! command -v promtool >/dev/null 2>&1; then
	echo "promtool is missing: apt-get install prometheus" >&2
	exit 1
fi
promtool check rules "$srcdir/examples/firesync-alerts.yml"
cd "$srcdir/tests" && promtool test rules alerts-test.yml
