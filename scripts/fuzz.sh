#!/usr/bin/env bash
# fuzz.sh [DURATION] — runs every Go fuzz target in the repository for DURATION (default 10s) each.
# The seed corpora also run as ordinary tests in `go test ./...`; this explores beyond them.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-10s}
status=0
while IFS= read -r file; do
	pkg=./$(dirname "$file")
	for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
		echo "fuzz $pkg $target for $time"
		if ! go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$time"; then
			echo "FUZZ FAILURE: $pkg $target" >&2
			status=1
		fi
	done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' || true)
exit $status
