#!/usr/bin/env bash
# Native histograms (issue 11), release builds on loopback, Muninn and Prometheus 2.42 side by
# side on the same data: a synthetic workload (no histogram corpus exists; see
# bench/src/hist_bench.rs) of SERIES latency histograms × SAMPLES scrapes (schema 3).
# Prints ingest CPU per million histograms, query latency, bytes per histogram in blocks and
# RSS after ingest.
#   bench/histograms.sh     (SERIES=2000, SAMPLES=240, CONC=4, RUNS=3, MAX_QUERY_S=300)
set -euo pipefail
cd "$(dirname "$0")/.."
series="${SERIES:-2000}"
samples="${SAMPLES:-240}"
conc="${CONC:-4}"
runs="${RUNS:-3}"
maxt="${MAX_QUERY_S:-300}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/muninn-target}"
cargo build -q --release -p muninn -p muninn-bench
bin="$CARGO_TARGET_DIR/release"
out="$PWD/bench-out"
work="$(mktemp -d)"
mkdir -p "$out"
mpid=""; ppid=""
trap '[ -n "$mpid" ] && kill "$mpid" 2>/dev/null; [ -n "$ppid" ] && kill "$ppid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
"$bin/muninn" all --http-addr=127.0.0.1:29009 --grpc-addr=127.0.0.1:29095 \
  --data-dir="$work/muninn" --storage.filesystem.dir="$work/bucket" \
  --ingester.flush-on-shutdown=false 2>"$out/hist-muninn.log" &
mpid=$!
printf 'global: {}\n' >"$work/prom.yml"
prometheus --config.file="$work/prom.yml" --storage.tsdb.path="$work/prom" \
  --web.listen-address=127.0.0.1:29090 --enable-feature=native-histograms \
  --web.enable-remote-write-receiver --web.enable-admin-api 2>"$out/hist-prom.log" &
ppid=$!
for _ in $(seq 300); do curl -sf 127.0.0.1:29009/ready >/dev/null && curl -sf 127.0.0.1:29090/-/ready >/dev/null && break; sleep 0.2; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
echo "--- ingest (synthetic: $series series x $samples histograms, schema 3)"
m0=$(rss "$mpid"); p0=$(rss "$ppid")
"$bin/muninn-bench" hist-push --url http://127.0.0.1:29009/api/v1/push --pid "$mpid" \
  --series "$series" --samples "$samples" --concurrency "$conc" | tee "$out/hist-push-muninn.txt"
"$bin/muninn-bench" hist-push --url http://127.0.0.1:29090/api/v1/write --pid "$ppid" \
  --series "$series" --samples "$samples" --concurrency "$conc" | tee "$out/hist-push-prometheus.txt"
m1=$(rss "$mpid"); p1=$(rss "$ppid")
echo "RSS growth: muninn $(( (m1 - m0) / 1024 )) MB, prometheus $(( (p1 - p0) / 1024 )) MB ($series histogram series)" | tee "$out/hist-rss.txt"
now=$(date +%s)
start=$(( now - samples * 15 ))
query() { # name url expr
  local best=""
  for _ in $(seq "$runs"); do
    t=$(curl -s -o /dev/null -m "$maxt" -w '%{time_total} %{http_code}' "$2/api/v1/query_range" -H 'X-Scope-OrgID: bench' \
      --data-urlencode "query=$3" --data-urlencode "start=$start" --data-urlencode "end=$now" \
      --data-urlencode step=15 || true)
    case "$t" in
      *" 200") t="${t% *}" ;;
      *) echo "$1: no answer within ${maxt}s ($t)"; return ;;
    esac
    best=$(printf '%s\n%s\n' "$best" "$t" | sed '/^$/d' | sort -g | head -1)
  done
  echo "$1: best of $runs ${best}s"
}
echo "--- queries (range over the data, step 15s)"
for q in 'sum by (route) (rate(bench_request_duration_seconds[5m]))' \
         'histogram_quantile(0.9, sum by (route) (rate(bench_request_duration_seconds[5m])))' \
         'histogram_count(rate(bench_request_duration_seconds[5m]))'; do
  echo "$q"
  query "  muninn    " http://127.0.0.1:29009 "$q"
  query "  prometheus" http://127.0.0.1:29090 "$q"
done | tee "$out/hist-query.txt"
echo "--- bytes per histogram in blocks"
curl -sf -XPOST -H 'X-Scope-OrgID: bench' "127.0.0.1:29009/ingester/flush?all=true" >/dev/null
mb=$(find "$work/bucket" -name block.parquet -printf '%s\n' | awk '{s+=$1} END {print s}')
mh=$(find "$work/bucket" -name meta.json -exec cat {} + | grep -o '"numHistogramSamples": *[0-9]*' | awk -F: '{s+=$2} END {print s}')
snap=$(curl -sf -XPOST 127.0.0.1:29090/api/v1/admin/tsdb/snapshot | grep -o '"name":"[^"]*"' | cut -d'"' -f4)
pb=$(du -sb "$work/prom/snapshots/$snap" | cut -f1)
total=$(( series * samples ))
awk -v mb="$mb" -v mh="$mh" -v pb="$pb" -v t="$total" 'BEGIN {
  printf "muninn: %d bytes of block.parquet for %d histograms = %.2f B/histogram\n", mb, mh, mb / mh;
  printf "prometheus 2.42: %d bytes of snapshot block (chunks + index + meta) for %d histograms = %.2f B/histogram\n", pb, t, pb / t;
  printf "ratio muninn/prometheus: %.2f\n", (mb / mh) / (pb / t) }' | tee "$out/hist-bytes.txt"
