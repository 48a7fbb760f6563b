#!/usr/bin/env bash
# Ring benchmarks (issue 9), release builds on loopback:
#   write: the corpus pushed through 3 gossip-joined ingesters (each one a router, the workers
#          spread over all three) at RF 1, then at RF 3; CPU summed over the three processes.
#          `muninn all` (no ring) is run the same way for reference.
#   query: the query benchmark through a ring (3 ingesters, RF 3, plus a querier), then against
#          `muninn all`, each side by side with Prometheus 2.42 on the same data.
#   bench/ring.sh [write|query|both]    (COPIES=10 corpus copies, QSERIES=20000 query series,
#                                        SIDES="ring all" for the query part)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-both}"
copies="${COPIES:-10}"
qseries="${QSERIES:-20000}"
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
  pids=()
}
trap 'cleanup; rm -rf "$work"' EXIT

wait_http() { # url
  for _ in $(seq 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.2; done
  echo "timed out waiting for $1" >&2; exit 1
}

# start_ring NAME RF: three ingesters joined by gossip; sets ring_pids.
start_ring() {
  local name=$1 rf=$2
  ring_pids=()
  for i in 1 2 3; do
    "$bin/muninn" ingester --http-addr=127.0.0.1:2910$i --grpc-addr=127.0.0.1:2920$i \
      --data-dir="$work/$name/ing-$i" --storage.filesystem.dir="$work/$name/bucket" \
      --memberlist.bind-addr=127.0.0.1:2930$i --memberlist.join=127.0.0.1:29301 \
      --ingester.ring.instance-id=ing-$i --ingester.ring.replication-factor="$rf" \
      2>"$out/ring-$name-ing-$i.log" &
    pids+=($!); ring_pids+=($!)
  done
  for i in 1 2 3; do wait_http "127.0.0.1:2910$i/ready"; done
  for _ in $(seq 300); do
    n=$(curl -s -H 'Accept: application/json' 127.0.0.1:29101/ingester/ring | grep -o '"state":"ACTIVE"' | wc -l || true)
    [ "$n" = 3 ] && return 0
    sleep 0.2
  done
  echo "ring did not form" >&2; exit 1
}

cpu_per_m() { sed -n 's/.* = \([0-9.]*\) CPU-s per million samples.*/\1/p'; }

if [ "$what" = write ] || [ "$what" = both ]; then
  urls=http://127.0.0.1:29101/api/v1/push,http://127.0.0.1:29102/api/v1/push,http://127.0.0.1:29103/api/v1/push
  for rf in 1 3; do
    echo "== write: 3 ingesters, RF $rf, $copies corpus copies"
    start_ring "rf$rf" "$rf"
    "$bin/muninn-bench" push --url "$urls" --pid "$(IFS=,; echo "${ring_pids[*]}")" \
      --copies "$copies" --concurrency 6 | tee "$work/rf$rf.txt"
    curl -s 127.0.0.1:29101/metrics | grep -E '^muninn_ingester_memory_series' || true
    cleanup
  done
  echo "== write: muninn all (no ring), $copies corpus copies"
  "$bin/muninn" all --http-addr=127.0.0.1:29009 --grpc-addr=127.0.0.1:29095 \
    --data-dir="$work/all" 2>"$out/ring-all.log" &
  pids+=($!); apid=$!
  wait_http 127.0.0.1:29009/ready
  "$bin/muninn-bench" push --url http://127.0.0.1:29009/api/v1/push --pid "$apid" \
    --copies "$copies" --concurrency 6 | tee "$work/all.txt"
  cleanup
  r1=$(cpu_per_m < "$work/rf1.txt"); r3=$(cpu_per_m < "$work/rf3.txt"); ra=$(cpu_per_m < "$work/all.txt")
  echo "CPU-s per million samples: all $ra, ring RF 1 $r1, ring RF 3 $r3; RF 3 / RF 1 = $(echo "scale=2; $r3 / $r1" | bc) (goal <= 3.3)"
fi

if [ "$what" = query ] || [ "$what" = both ]; then
  cat > "$work/prom.yml" <<'YML'
global: {scrape_interval: 1h}
storage: {tsdb: {out_of_order_time_window: 3650d}}
YML
  for side in ${SIDES:-ring all}; do
    echo "== query: $side ($qseries counter series, 480 samples each), Prometheus alongside"
    rm -rf "$work/prom"
    prometheus --config.file="$work/prom.yml" --web.listen-address=127.0.0.1:29090 \
      --storage.tsdb.path="$work/prom" --web.enable-remote-write-receiver 2>"$out/ring-prometheus.log" &
    pids+=($!); ppid=$!
    if [ "$side" = ring ]; then
      start_ring query 3
      "$bin/muninn" querier --http-addr=127.0.0.1:29110 --data-dir="$work/query/q" \
        --storage.filesystem.dir="$work/query/bucket" \
        --memberlist.bind-addr=127.0.0.1:29310 --memberlist.join=127.0.0.1:29301 2>"$out/ring-querier.log" &
      pids+=($!); qpid=$!; qurl=http://127.0.0.1:29110; wurl=http://127.0.0.1:29101
    else
      "$bin/muninn" all --http-addr=127.0.0.1:29009 --grpc-addr=127.0.0.1:29095 \
        --data-dir="$work/qall" 2>"$out/ring-all-query.log" &
      pids+=($!); qpid=$!; qurl=http://127.0.0.1:29009; wurl=$qurl
    fi
    wait_http "$qurl/ready"; wait_http 127.0.0.1:29090/-/ready
    "$bin/muninn-bench" query --muninn-url "$qurl" --muninn-write-url "$wurl" --muninn-pid "$qpid" \
      --prometheus-url http://127.0.0.1:29090 --prometheus-pid "$ppid" --series "$qseries" --runs 5 \
      | tee "$work/query-$side.txt"
    cleanup
  done
fi
