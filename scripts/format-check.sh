#!/usr/bin/env bash
# format-check.sh — checks that the C lines changed since .clang-format was added follow it.
#
#   scripts/format-check.sh          check (exit 1 and list the files when a line is off)
#   scripts/format-check.sh --fix    reformat those lines in the work tree
#   FORMAT_BASE=REV                  compare with REV instead (e.g. origin/main in a branch)
#
# Only changed lines are checked (git clang-format): the tree was not reformatted when
# .clang-format came in, and a check of whole files would fail on code nobody touched. The base
# is the commit that added .clang-format, so the check gives the same answer on every clone of
# the same commit, uncommitted edits included. Needs clang-format 14 (Debian: clang-format),
# under its plain name or as clang-format-14 / git-clang-format-14.
set -euo pipefail
cd "$(dirname "$0")/.."

fix=0
case "${1:-}" in
--fix) fix=1 ;;
"") ;;
*) echo "usage: $0 [--fix]" >&2; exit 2 ;;
esac

pick() {  # pick NAME...: the first command found
    local n
    for n in "$@"; do
        if command -v "$n" >/dev/null 2>&1; then command -v "$n"; return 0; fi
    done
    return 1
}
cf=$(pick clang-format clang-format-14) ||
    { echo "format-check: clang-format not found (apt-get install clang-format)" >&2; exit 2; }
gcf=$(pick git-clang-format git-clang-format-14) ||
    { echo "format-check: git-clang-format not found (apt-get install clang-format)" >&2; exit 2; }

base=${FORMAT_BASE:-$(git log --diff-filter=A --format=%H -1 -- .clang-format)}
if [ -z "$base" ]; then
    # .clang-format not committed yet: check what the work tree changes against HEAD.
    base=HEAD
fi
if [ -z "${FORMAT_BASE:-}" ] && [ "$(git rev-parse --is-shallow-repository)" = true ]; then
    echo "format-check: note: shallow clone, so the commit that added .clang-format may be" \
         "missing and fewer lines checked; fetch the history (or set FORMAT_BASE)" >&2
fi
git rev-parse --verify -q "$base^{commit}" >/dev/null ||
    { echo "format-check: base $base is not a commit here (shallow clone?)" >&2; exit 2; }

# C sources only: git clang-format's default list of extensions includes .js, and web/ is not
# C. The version check keeps an older clang-format from reporting layout it would choose
# differently.
ver=$("$cf" --version | sed -n 's/.*clang-format version \([0-9]*\).*/\1/p')
[ "$ver" = 14 ] ||
    echo "format-check: note: $cf is version ${ver:-?}, .clang-format was tuned for 14" >&2
args=(--binary "$cf" --extensions c,h "$base" --)

if [ "$fix" = 1 ]; then
    "$gcf" -f "${args[@]}"
    exit 0
fi
if ! out=$("$gcf" --diff "${args[@]}" 2>&1); then
    printf '%s\n' "$out" >&2
    echo "format-check: $gcf failed" >&2
    exit 2
fi
# clang-format 14's git-clang-format --diff exits 0 either way; a diff is what fails the check.
if ! grep -q '^diff --git' <<<"$out"; then
    echo "format-check: lines changed since ${base:0:12} follow .clang-format"
    exit 0
fi
echo "$out"
echo
echo "format-check: FAILED: lines changed since ${base:0:12} do not follow .clang-format in:" >&2
sed -n 's|^diff --git a/\(.*\) b/.*|    \1|p' <<<"$out" >&2
echo "Apply the diff above, or run scripts/format-check.sh --fix (changed lines only)." >&2
exit 1
