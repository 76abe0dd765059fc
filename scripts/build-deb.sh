#!/usr/bin/env bash
# Builds the Debian binary package (isthmus_VERSION_ARCH.deb) from the
# working tree: copies the tree (tracked and new, not ignored, files) to a
# temporary directory, adds packaging/debian as debian/, runs
# dpkg-buildpackage -us -uc -b there, and moves the results to OUT.
#
#   scripts/build-deb.sh [--out DIR]     (default: build-deb/ in the tree)
#
# Needs debhelper and dpkg-dev (installed here via
# scripts/install-deps.sh --packaging when missing) and the build packages of
# scripts/install-deps.sh; dpkg-buildpackage names any that are missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/build-deb"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --out=*) out="${1#--out=}"; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "build-deb: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

if ! command -v dpkg-buildpackage >/dev/null || ! command -v dh >/dev/null; then
  "$root/scripts/install-deps.sh" --packaging
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/isthmus-deb.XXXXXX")"
# Removed on success; kept on failure for a look at the build tree.
trap 'rc=$?; if [ $rc -eq 0 ]; then rm -rf "$work"; else echo "build-deb: failed; build tree kept in $work" >&2; fi' EXIT
src="$work/isthmus"
mkdir -p "$src"

# The tree as git sees it (no build directories, no demo state); without git,
# everything but build*/ and .git/.
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z --cached --others --exclude-standard |
     while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
     tar --null -T - -cf -) | tar -C "$src" -xf -
else
  tar -C "$root" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$src" -xf -
fi
rm -rf "$src/debian"
cp -a "$root/packaging/debian" "$src/debian"

echo "build-deb: building in $src"
(cd "$src" && DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-parallel=$(nproc)}" dpkg-buildpackage -us -uc -b)

mkdir -p "$out"
for f in "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes; do
  [ -e "$f" ] && mv -f "$f" "$out/"
done
echo "build-deb: packages in $out:"
ls -1 "$out"/*.deb
