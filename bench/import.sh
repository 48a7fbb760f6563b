#!/usr/bin/env bash
# `muninn import-blocks` throughput, release build, filesystem bucket: samples per CPU second
# (the conversion is single-threaded: samples/s per core), on
#  1. ../shared/reference-blocks (3 blocks, 130 series, 187,200 samples, synthetic, promtool-made);
#  2. the real corpus (../shared/corpus: node_exporter and Prometheus scraped every 5 s for 2 h)
#     ×1 (950 series, 1.37M samples) and ×5 with `instance` rewritten per copy (4,750 series,
#     6.9M samples; the copies' identical values flatter the size, not the speed), written as OpenMetrics
#     by `muninn-bench openmetrics` and made into Prometheus blocks by promtool, which uses
#     Prometheus's own TSDB block writer (the stale markers become plain NaN on the way);
#  3. 6 promtool-made 2 h blocks of bench/import_gen.py's data: 1,000 series (counters and
#     decimal random-walk gauges, 100 instances), 2.88M samples (synthetic but not constant).
# Prometheus has no equivalent import (promtool only creates blocks), so there is no reference
# side; `promtool tsdb create-blocks-from openmetrics` making the same blocks is timed beside it
# for scale.
#   bench/import.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/muninn-target}"
cargo build -q --release -p muninn -p muninn-bench
bin="$CARGO_TARGET_DIR/release/muninn"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "--- reference blocks"
"$bin" import-blocks --tenant bench --data-dir="$work/ref" ../shared/reference-blocks 2>&1 | tail -1

# x1 gives the honest size ratio; x5's copies repeat the same values, which flatters the size
# of Muninn's column-compressed blocks (its throughput figure is fair: every copy is decoded).
for copies in 1 5; do
  echo "--- the corpus x$copies (real samples), blocks by promtool"
  "$CARGO_TARGET_DIR/release/muninn-bench" openmetrics --copies "$copies" > "$work/corpus.om"
  /usr/bin/time -f "promtool create-blocks-from: %e s wall, %U+%S CPU s, %M kB max RSS" \
    promtool tsdb create-blocks-from openmetrics "$work/corpus.om" "$work/corpus-$copies" >/dev/null
  rm -f "$work/corpus.om"
  /usr/bin/time -f "muninn import-blocks: %e s wall, %U+%S CPU s, %M kB max RSS" \
    "$bin" import-blocks --tenant bench --data-dir="$work/imported-$copies" "$work/corpus-$copies" 2>&1 | tail -2
  du -sb "$work/corpus-$copies" | awk '{printf "Prometheus blocks: %d bytes\n", $1}'
  du -sb "$work/imported-$copies/bucket/bench" | awk '{printf "Muninn blocks: %d bytes\n", $1}'
done

echo "--- generating 1,000 series x 12 h (bench/import_gen.py), blocks by promtool"
python3 bench/import_gen.py "$work/bench.om"
/usr/bin/time -f "promtool create-blocks-from: %e s wall, %U+%S CPU s, %M kB max RSS" \
  promtool tsdb create-blocks-from openmetrics "$work/bench.om" "$work/blocks" >/dev/null
rm -f "$work/bench.om"
echo "--- import"
/usr/bin/time -f "muninn import-blocks: %e s wall, %U+%S CPU s, %M kB max RSS" \
  "$bin" import-blocks --tenant bench --data-dir="$work/gen" "$work/blocks" 2>&1 | tail -2
du -sb "$work/blocks" | awk '{printf "Prometheus blocks: %d bytes\n", $1}'
du -sb "$work/gen/bucket/bench" | awk '{printf "Muninn blocks: %d bytes\n", $1}'
