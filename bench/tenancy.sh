#!/usr/bin/env bash
# The cost of per-tenant limits on the write path (issue 10), release builds on loopback:
# the corpus pushed into `muninn all` with no limits, then with the bench tenant under limits
# set so high they never refuse (rate, burst, series per user and per metric, an out-of-order
# window), so every check runs on every push. Prints CPU-s per million samples for each.
#   bench/tenancy.sh        (COPIES=20 corpus copies, CONC=4 connections, ROUNDS=2 alternations)
set -euo pipefail
cd "$(dirname "$0")/.."
copies="${COPIES:-20}"
conc="${CONC:-4}"
rounds="${ROUNDS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/muninn-target}"
cargo build -q --release -p muninn -p muninn-bench
bin="$CARGO_TARGET_DIR/release"
out="$PWD/bench-out"
work="$(mktemp -d)"
mkdir -p "$out"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
cat >"$work/runtime.yaml" <<'YAML'
overrides:
  bench:
    ingestion_rate: 1000000000
    ingestion_burst_size: 1000000000
    max_global_series_per_user: 1000000000
    max_global_series_per_metric: 1000000000
    out_of_order_time_window: 1h
YAML
run() { # name extra-flags...
  local name=$1; shift
  rm -rf "$work/data"
  "$bin/muninn" all --http-addr=127.0.0.1:29009 --grpc-addr=127.0.0.1:29095 \
    --data-dir="$work/data" "$@" 2>"$out/tenancy-$name.log" &
  pid=$!
  for _ in $(seq 300); do curl -sf 127.0.0.1:29009/ready >/dev/null && break; sleep 0.2; done
  echo "--- $name"
  "$bin/muninn-bench" push --url http://127.0.0.1:29009/api/v1/push --pid "$pid" \
    --copies "$copies" --concurrency "$conc" | tee "$out/tenancy-$name.txt"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}
for r in $(seq "$rounds"); do
  run "no-limits-$r"
  run "limits-$r" --runtime-config.file="$work/runtime.yaml"
done
