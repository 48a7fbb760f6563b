#!/usr/bin/env bash
# Query benchmark (issue 12), release build on loopback: 100k counter series plus 10k bucket
# series × 2h at 15 s loaded into `muninn all` and into Prometheus 2.42 (remote-write
# receiver), then six query shapes timed against both with each process's peak RSS growth.
# With BASE=<path to another muninn binary> (e.g. one built from an earlier commit), that
# binary is then started on the same data directory (WAL replay) and measured against the
# same Prometheus, so both Muninn builds see identical data in one run. Each side runs two
# passes of the queries: the first includes warm-up, the second is the steady state.
# With BLOCKS=1 the queries are answered from blocks instead: after loading (and one quick pass
# over the head), `POST /ingester/flush?all=true` ships everything and the head drops it
# (`--ingester.retain-after-ship=0s`), then two passes run. Blocks of different format
# versions are not comparable on one data directory, so compare builds by running the script
# once per build: MUNINN_BIN=<binary> picks the Muninn binary (default: this tree's build).
#   bench/query.sh          (SERIES=100000 RUNS=5 BASE= BLOCKS= MUNINN_BIN=)
set -euo pipefail
cd "$(dirname "$0")/.."
series="${SERIES:-100000}"
runs="${RUNS:-5}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/muninn-target}"
cargo build -q --release -p muninn -p muninn-bench
bin="$CARGO_TARGET_DIR/release"
out="$PWD/bench-out"
work="$(mktemp -d)"
mkdir -p "$out"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'cleanup; rm -rf "$work"' EXIT

wait_http() { # url
  for _ in $(seq 1500); do curl -sf "$1" >/dev/null && return 0; sleep 0.2; done
  echo "timed out waiting for $1" >&2; exit 1
}

blocks="${BLOCKS:-}"
muninn_bin="${MUNINN_BIN:-$bin/muninn}"
extra=()
if [ "$blocks" = 1 ]; then
  extra=(--ingester.retain-after-ship=0s --ingester.cut-interval=5s)
fi

start_muninn() { # binary
  "$1" all --http-addr=127.0.0.1:29009 --grpc-addr=127.0.0.1:29095 --data-dir="$work/muninn" \
    --ingester.flush-on-shutdown=false "${extra[@]}" >>"$work/muninn.log" 2>&1 &
  mpid=$!
  pids+=("$mpid")
  wait_http http://127.0.0.1:29009/ready
}

printf 'global: {scrape_interval: 1h}\n' >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --web.listen-address=127.0.0.1:29090 \
  --storage.tsdb.path="$work/prom" --web.enable-remote-write-receiver >"$work/prom.log" 2>&1 &
ppid=$!
pids+=("$ppid")
wait_http http://127.0.0.1:29090/-/ready
start_muninn "$muninn_bin"

query() { # extra muninn-bench query arguments...
  "$bin/muninn-bench" query --muninn-url http://127.0.0.1:29009 --muninn-pid "$mpid" \
    --prometheus-url http://127.0.0.1:29090 --prometheus-pid "$ppid" --series "$series" "$@"
}

if [ "$blocks" = 1 ]; then
  echo "== $muninn_bin ($("$muninn_bin" --version 2>/dev/null || true)) from blocks vs prometheus ($series series, $runs runs)" | tee "$out/query-blocks.txt"
  echo "-- loading, one pass over the head" | tee -a "$out/query-blocks.txt"
  query --runs 1 | tee -a "$out/query-blocks.txt"
  end="$(grep -o 'end-ms [0-9]*' "$out/query-blocks.txt" | awk '{print $2}')"
  curl -sf -XPOST "http://127.0.0.1:29009/ingester/flush?all=true" >/dev/null
  sleep 15
  curl -s http://127.0.0.1:29009/metrics | grep -E '^muninn_ingester_head_heap_bytes' | tee -a "$out/query-blocks.txt"
  find "$work/muninn" -name block.parquet | wc -l | sed 's/^/blocks: /' | tee -a "$out/query-blocks.txt"
  for pass in 1 2; do
    echo "-- from blocks, pass $pass" | tee -a "$out/query-blocks.txt"
    query --runs "$runs" --end-ms "$end" | tee -a "$out/query-blocks.txt"
  done
  exit 0
fi

echo "== muninn $(git rev-parse --short HEAD) vs prometheus ($series series, $runs runs)" | tee "$out/query.txt"
query --runs "$runs" | tee -a "$out/query.txt"
end="$(grep -o 'end-ms [0-9]*' "$out/query.txt" | awk '{print $2}')"
# A second pass on the same processes: the first includes each side's warm-up (allocator
# caches, Go heap growth), the second shows the steady state.
echo "== muninn, second pass" | tee -a "$out/query.txt"
query --runs "$runs" --end-ms "$end" | tee -a "$out/query.txt"

if [ -n "${BASE:-}" ]; then
  kill -TERM "$mpid"
  wait "$mpid" 2>/dev/null || true
  start_muninn "$BASE"
  echo "== base $BASE (same data, WAL replayed) vs prometheus" | tee -a "$out/query.txt"
  query --runs "$runs" --end-ms "$end" | tee -a "$out/query.txt"
  echo "== base, second pass" | tee -a "$out/query.txt"
  query --runs "$runs" --end-ms "$end" | tee -a "$out/query.txt"
fi
