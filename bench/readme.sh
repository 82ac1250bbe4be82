#!/bin/sh
# Put the Markdown table of a bench run (bench/run.sh writes it: bench.md
# beside the results) into README.md, in place of what stands between the
# lines "<!-- bench table: begin -->" and "<!-- bench table: end -->".
#
# Usage: sh bench/readme.sh BENCH.md [README.md]
set -eu
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: sh bench/readme.sh BENCH.md [README.md]" >&2; exit 2; }
md=$1
readme=${2:-$(cd "$(dirname "$0")/.." && pwd)/README.md}
[ -s "$md" ] || { echo "bench/readme.sh: $md is missing or empty" >&2; exit 1; }
begin='<!-- bench table: begin -->'
end='<!-- bench table: end -->'
[ "$(grep -cxF "$begin" "$readme")" = 1 ] && [ "$(grep -cxF "$end" "$readme")" = 1 ] || {
        echo "bench/readme.sh: $readme needs one line '$begin' and one '$end'" >&2
        exit 1
}
tmp=$(mktemp "$readme.XXXXXX")
trap 'rm -f "$tmp"' EXIT
awk -v begin="$begin" -v end="$end" -v md="$md" '
  $0 == begin { print; while ((getline line < md) > 0) print line; skip = 1; next }
  $0 == end   { skip = 0 }
  !skip' "$readme" > "$tmp"
mv "$tmp" "$readme"
trap - EXIT
echo "bench/readme.sh: $readme now has the table of $md" >&2
