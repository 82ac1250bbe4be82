#!/bin/sh
# The bench harness: run every bench program of a build with --json (and
# --quick), merge their rows into bench/results.json, print one table.
#
# Usage: sh bench/run.sh BUILDDIR quick|full
#
# Each program prints one JSON array of rows
#   {"name","ours","baseline","ratio","target","meets","unit"}
# (target and meets null when a row is for information); extra fields such
# as "spread" are kept in results.json.
set -u

usage() { echo "usage: sh bench/run.sh BUILDDIR quick|full" >&2; exit 2; }
[ $# -eq 2 ] || usage
build=$1
case $2 in
quick) quick=--quick ;;
full)  quick= ;;
*)     usage ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
out=${BENCH_RESULTS:-$here/results.json}
command -v jq >/dev/null 2>&1 || { echo "bench: jq is needed (apt-get install jq)" >&2; exit 1; }

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
status=0 n=0
for prog in "$build"/bench/*; do
        [ -f "$prog" ] && [ -x "$prog" ] || continue
        name=$(basename "$prog")
        n=$((n + 1))
        echo "bench: $name" >&2
        # shellcheck disable=SC2086
        if ! "$prog" --json $quick > "$tmp/$n.json" 2> "$tmp/$n.err"; then
                echo "bench: $name failed:" >&2
                cat "$tmp/$n.err" >&2
                status=1
                rm -f "$tmp/$n.json"
        elif ! jq -e 'type == "array"' "$tmp/$n.json" >/dev/null 2>&1; then
                echo "bench: $name: output is not a JSON array" >&2
                status=1
                rm -f "$tmp/$n.json"
        fi
done
[ "$n" -gt 0 ] || { echo "bench: no bench programs in $build/bench" >&2; exit 1; }

if ls "$tmp"/*.json >/dev/null 2>&1; then
        jq -s 'add' "$tmp"/*.json > "$tmp/all" && mv "$tmp/all" "$out" || exit 1
else
        echo '[]' > "$out"
fi

# One table. A target is shown as "<=" when meets agrees with ratio <= target
# (a cost), else ">=" (a throughput).
jq -r '
  def fix2: (. * 100 | round) as $v | ($v | fabs | tostring) as $s
            | (if ($s | length) < 3 then ("00" + $s)[-3:] else $s end) as $p
            | (if $v < 0 then "-" else "" end) + $p[:-2] + "." + $p[-2:];
  def num: if . == null then "-"
           elif (. | fabs) >= 100 then (. | round | tostring)
           else fix2 end;
  ["benchmark", "ours", "baseline", "ratio", "target", "meets"],
  (.[] | [ .name,
           ((.ours | num) + " " + (.unit // "")),
           ((.baseline | num) + " " + (.unit // "")),
           (if .ratio == null then "-" else (.ratio | fix2) end),
           (if .target == null then "-"
            elif ((.ratio <= .target) == .meets) then "<=" + (.target | fix2)
            else ">=" + (.target | fix2) end),
           (if .meets == null then "-" elif .meets then "yes" else "NO" end) ])
  | @tsv' "$out" |
awk -F '\t' '
  { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } }
  END { for (r = 1; r <= NR; r++) {
          line = sprintf("%-" w[1] "s", cell[r, 1])
          for (i = 2; i <= 6; i++) line = line sprintf("  %" w[i] "s", cell[r, i])
          print line } }'
echo "results: $out" >&2
exit $status
