#!/usr/bin/env bash
# version.sh — the version of this checkout, from git, in a form Debian's version ordering accepts.
#   scripts/version.sh          the version: 1.2.0 on a tag v1.2.0; 1.2.0+git5.g0cf8d73ab on the 5th
#                               commit after it; 0.0.0+git139.g0cf8d73ab before the first tag;
#                               ".dirty" appended when tracked files are modified. A tag's "-" (v1.3.0-rc1)
#                               becomes "~" (1.3.0~rc1), which sorts before the release.
#   scripts/version.sh -X       the -ldflags argument that sets it, with the commit, in the binary:
#                               -X 'main.version=1.2.0+git5.g0cf8d73ab 0cf8d73ab1c2'
#                               (`gatewayd -version` prints "gatewayd 1.2.0+git5.g0cf8d73ab 0cf8d73ab1c2")
# GATEWAYD_VERSION, if set, is used instead of git (a source tree without .git, or a rebuild).
set -euo pipefail
cd "$(dirname "$0")/.."

commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "${GATEWAYD_VERSION:-}" ]; then
	v=$GATEWAYD_VERSION
elif ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo "version.sh: not a git checkout; set GATEWAYD_VERSION" >&2
	exit 1
else
	if d=$(git describe --tags --long --match 'v[0-9]*' 2>/dev/null); then
		# v1.2.0-5-g0cf8d73ab: tag, commits since, hash.
		hash=${d##*-}
		rest=${d%-*}
		n=${rest##*-}
		tag=${rest%-*}
		base=${tag#v}
		base=${base//-/\~}
	else
		base=0.0.0
		n=$(git rev-list --count HEAD)
		hash=g$(git rev-parse --short=9 HEAD)
	fi
	v=$base
	[ "$n" = 0 ] && [ -n "${d:-}" ] || v="$v+git$n.$hash"
	git diff --quiet HEAD -- 2>/dev/null || v="$v.dirty"
fi
[[ "$v" =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || { echo "version.sh: '$v' is not a Debian version (digits first, then letters, digits, . + ~)" >&2; exit 1; }

case "${1:-}" in
"") echo "$v" ;;
-X) echo "-X 'main.version=$v $commit'" ;;
*) echo "usage: version.sh [-X]" >&2; exit 2 ;;
esac
