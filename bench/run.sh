#!/bin/sh
# The bench harness: run every bench program of a build with --json (and
# --quick), merge their rows into one JSON array (bench/results.json, or
# $BENCH_RESULTS), print one table, write the same table as Markdown with
# the machine, kernel and load it was taken at (bench.md beside the
# results, or $BENCH_MD: what bench/readme.sh puts in the README) and,
# when gnuplot is there, draw the scaling runs into a PNG beside the
# results (scaling.png).
#
# Usage: sh bench/run.sh BUILDDIR quick|full
#
# Each program prints one JSON array of rows
#   {"name", "ours", "baseline", "ratio", "target", "meets", "unit"}
# where ours and baseline are medians over repeated runs, ratio is
# ours/baseline, meets is a boolean (target and meets are null for a row
# given for information; ours is null for a row that could not run here).
# Optional fields: "higher_is_better": true (a throughput: the target is a
# least ratio, not a most), "spread": {"ours_min", "ours_max",
# "baseline_min", "baseline_max"} (the fastest and slowest run), "chart"
# and "x" (the row is a point of a scaling chart), "skipped" (why a row with
# ours null did not run), anything else (kept in the results as is). Every
# row gets "spread" (null when the program gave none) and "run": the date,
# machine, kernel and load of this run.
#
# Exit status: 1 if a program failed or printed rows of the wrong shape;
# whether targets are met does not change it (the table says so).
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
md=${BENCH_MD:-$(dirname "$out")/bench.md}
chart=$(dirname "$out")/scaling.png
command -v jq >/dev/null 2>&1 || { echo "bench: jq is needed (apt-get install jq)" >&2; exit 1; }

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# The shape every row must have.
shape='type == "array" and all(.[];
        type == "object" and (.name | type == "string") and
        (.unit | type == "string") and
        (.ours == null or (.ours | type == "number")) and
        (.baseline == null or (.baseline | type == "number")) and
        (.ratio == null or (.ratio | type == "number")) and
        (.target == null or (.target | type == "number")) and
        (.meets == null or (.meets | type == "boolean")) and
        has("ours") and has("baseline") and has("ratio") and has("target") and has("meets"))'

load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
cpus=$(nproc 2>/dev/null || echo '?')
model=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo 2>/dev/null | head -n 1)
memtotal=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)
kernel="Linux $(uname -r)"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
echo "bench: $cpus CPUs, $kernel, load average $load, $2 mode" >&2
status=0 n=0 t0=$(date +%s)
for prog in "$build"/bench/*; do
        [ -f "$prog" ] && [ -x "$prog" ] || continue
        name=$(basename "$prog")
        n=$((n + 1))
        s0=$(date +%s)
        # shellcheck disable=SC2086
        if ! "$prog" --json $quick > "$tmp/$n.json" 2> "$tmp/$n.err"; then
                echo "bench: $name failed:" >&2
                cat "$tmp/$n.err" >&2
                status=1
                rm -f "$tmp/$n.json"
        elif ! jq -e "$shape" "$tmp/$n.json" >/dev/null 2>&1; then
                echo "bench: $name: its output is not an array of rows" \
                     "(name, ours, baseline, ratio, target, meets, unit)" >&2
                status=1
                rm -f "$tmp/$n.json"
        else
                # what a program says beside its rows (a count it skipped, ...)
                sed "s/^/bench: $name: /" "$tmp/$n.err" >&2
        fi
        echo "bench: $name: $(($(date +%s) - s0)) s" >&2
done
[ "$n" -gt 0 ] || { echo "bench: no bench programs in $build/bench" >&2; exit 1; }

load_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
secs=$(($(date +%s) - t0))
if ls "$tmp"/*.json >/dev/null 2>&1; then
        jq -s --arg date "$started" --arg cpus "$cpus" --arg model "$model" \
           --arg mem "$memtotal" --arg kernel "$kernel" --arg load "$load" \
           --arg load_end "$load_end" --arg mode "$2" '
           add | map(.spread = (.spread // null)
                     | .run = {date: $date, cpus: $cpus, cpu: $model, memory: $mem,
                               kernel: $kernel, load_start: $load, load_end: $load_end,
                               mode: $mode})' \
           "$tmp"/*.json > "$tmp/all" && mv "$tmp/all" "$out" || exit 1
else
        echo '[]' > "$out"
fi

# ---------------------------------------------------------------- the table
# ours and baseline with their spread [fastest..slowest run]; the target as
# "<=" (a cost: ours/baseline at most) or ">=" (higher_is_better: at least).
jq -r '
  def fix2: (. * 100 | round) as $v | ($v | fabs | tostring) as $s
            | (if ($s | length) < 3 then ("00" + $s)[-3:] else $s end) as $p
            | (if $v < 0 then "-" else "" end) + $p[:-2] + "." + $p[-2:];
  def num: if . == null then "-"
           elif (. | fabs) >= 100 then (. | round | tostring)
           else fix2 end;
  def cell($v; $lo; $hi; $unit):
      if $v == null then "-"
      else ($v | num)
           + (if $lo != null and $hi != null
              then " [" + ($lo | num) + ".." + ($hi | num) + "]" else "" end)
           + " " + $unit end;
  ["benchmark", "ours [min..max]", "baseline [min..max]", "ratio", "target", "meets"],
  (.[] | (.spread // {}) as $s | (.unit // "") as $u | [
      .name,
      (if .ours == null then "not run" + (if .skipped then ": " + .skipped else "" end)
       else cell(.ours; $s.ours_min; $s.ours_max; $u) end),
      cell(.baseline; $s.baseline_min; $s.baseline_max; $u),
      (if .ratio == null then "-" else (.ratio | fix2) end),
      (if .target == null then "-"
       elif .higher_is_better == true then ">=" + (.target | fix2)
       else "<=" + (.target | fix2) end),
      (if .meets == null then "-" elif .meets then "yes" else "NO" end) ])
  | @tsv' "$out" > "$tmp/table.tsv" || exit 1
awk -F '\t' '
  { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } }
  END { for (r = 1; r <= NR; r++) {
          line = sprintf("%-" w[1] "s", cell[r, 1])
          for (i = 2; i <= 6; i++) line = line sprintf("  %" w[i] "s", cell[r, i])
          print line } }' "$tmp/table.tsv"
summary=$(jq -r '"\(length) rows; targets met: \([.[] | select(.meets == true)] | length), " +
       "missed: \([.[] | select(.meets == false)] | length), " +
       "not run: \([.[] | select(.ours == null)] | length)"' "$out")
echo "$summary"
echo "bench: results in $out ($secs s in all)" >&2

# ---------------------------------------------------------------- Markdown
# The same table for the README (bench/readme.sh puts it there), with what
# it was taken on and at, and the targets missed and rows not run listed.
{
        echo "Taken on $started with \`make bench\` ($2 mode, $secs s):" \
             "$cpus CPUs ($model), $memtotal, $kernel;" \
             "load average $load when the run began, $load_end when it ended."
        echo
        awk -F '\t' '
          { gsub(/\|/, "\\|")
            line = "|"; for (i = 1; i <= NF; i++) line = line " " $i " |"; print line
            if (NR == 1) print "|---|--:|--:|--:|--:|:-:|" }' "$tmp/table.tsv"
        echo
        echo "$summary."
        missed=$(jq -r '.[] | select(.meets == false) | "- \(.name): \(.ratio | . * 1000 | round / 1000) against \(if .higher_is_better == true then ">=" else "<=" end) \(.target)"' "$out")
        if [ -n "$missed" ]; then
                echo
                echo "Targets missed:"
                echo
                echo "$missed"
        fi
        notrun=$(jq -r '.[] | select(.ours == null) | "- \(.name): \(.skipped // "no reason given")"' "$out")
        if [ -n "$notrun" ]; then
                echo
                echo "Not run here:"
                echo
                echo "$notrun"
        fi
} > "$md" || exit 1
echo "bench: Markdown table in $md" >&2

# ---------------------------------------------------------------- the chart
# One panel per "chart" name of the rows: y against x, one line per series
# (a row's ours under its "series", its baseline under its
# "baseline_series" when it has one), the spread as error bars.
if command -v gnuplot >/dev/null 2>&1; then
        charts=$(jq -r '[.[] | select(.chart != null and .ours != null) | .chart] | unique | .[]' "$out")
        if [ -n "$charts" ]; then
                np=0
                {
                        for c in $charts; do np=$((np + 1)); done
                        cols=$(( np > 1 ? 2 : 1 ))
                        rows=$(( (np + cols - 1) / cols ))
                        echo "set terminal pngcairo size $((cols * 640)),$((rows * 420)) font ',10'"
                        echo "set output '$chart'"
                        echo "set multiplot layout $rows,$cols title 'ashmem toolkit: scaling runs, median and min..max ($(nproc) CPUs, Linux $(uname -r), load $load)'"
                        echo "set grid; set key top left; set logscale x; set format x '%g'"
                        echo "set offsets graph 0.05, graph 0.05, graph 0.1, 0"
                        i=0
                        for c in $charts; do
                                i=$((i + 1))
                                # every point of the chart: series, x, y, min, max
                                jq -r --arg c "$c" '
                                  [.[] | select(.chart == $c and .ours != null)] | sort_by(.x) | .[]
                                  | (.spread // {}) as $s
                                  | ([(.series // "ours"), .x, .ours,
                                      ($s.ours_min // .ours), ($s.ours_max // .ours)] | @tsv),
                                    (if .baseline_series != null and .baseline != null then
                                       [.baseline_series, .x, .baseline,
                                        ($s.baseline_min // .baseline),
                                        ($s.baseline_max // .baseline)] | @tsv
                                     else empty end)' "$out" > "$tmp/chart$i.tsv"
                                u=$(jq -r --arg c "$c" '[.[] | select(.chart == $c)][0].unit' "$out")
                                case $c in
                                handout) t="descriptors handed out per second, all clients"
                                         xl="concurrent clients, one connection each"; yl="requests/s" ;;
                                scale-create) t="create: broker CPU time per region (name)"
                                         xl="regions (names) held"; yl="$u per region" ;;
                                scale-list) t="list --json: broker CPU time per region (name)"
                                         xl="regions (names) held"; yl="$u per region" ;;
                                scale-memory) t="memory per region (name) as a cgroup charges it"
                                         xl="regions (names) held"; yl="bytes per region" ;;
                                scale-latency) t="p99 latency of one operation"
                                         xl="regions held"; yl="$u" ;;
                                *)       t=$c; xl="x"; yl=$u ;;
                                esac
                                echo "set title '$t'; set xlabel '$xl'; set ylabel '$yl'; set yrange [0:*]"
                                plot= k=0
                                for sname in $(cut -f1 "$tmp/chart$i.tsv" | awk '!seen[$0]++' | tr ' ' '\001'); do
                                        sname=$(printf '%s' "$sname" | tr '\001' ' ')
                                        k=$((k + 1))
                                        awk -F '\t' -v s="$sname" '$1 == s { print $2, $3, $4, $5 }' \
                                                "$tmp/chart$i.tsv" > "$tmp/chart$i.$k.dat"
                                        plot="$plot${plot:+, }'$tmp/chart$i.$k.dat' using 1:2:3:4 with yerrorlines lw 2 title '$sname'"
                                done
                                echo "plot $plot"
                        done
                        echo "unset multiplot"
                } > "$tmp/chart.gp"
                if gnuplot "$tmp/chart.gp" 2> "$tmp/gnuplot.err"; then
                        echo "bench: chart in $chart" >&2
                else
                        echo "bench: gnuplot failed:" >&2
                        cat "$tmp/gnuplot.err" >&2
                fi
        fi
else
        echo "bench: no gnuplot, no chart (apt-get install gnuplot-nox)" >&2
fi
exit $status
