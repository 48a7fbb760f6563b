#!/usr/bin/env bash
# Soak (issue 8): `muninn all` (release) with cuts and compactor passes every 10 minutes, and a
# reference Prometheus, fed the corpus in a loop at 10x its real rate for MINUTES (default 60).
# Prints progress every 10 s; the RSS/disk curves go to bench-out/soak.tsv.
#   bench/soak.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-60}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/muninn-target}"
cargo build -q --release -p muninn -p muninn-bench
bin="$CARGO_TARGET_DIR/release"
out="$PWD/bench-out"
work="$(mktemp -d)"
mkdir -p "$out"
cat > "$work/prom.yml" <<'YML'
global: {scrape_interval: 1h}
storage: {tsdb: {out_of_order_time_window: 3650d}}
YML
"$bin/muninn" all --http-addr=127.0.0.1:29009 --grpc-addr=127.0.0.1:29095 --data-dir="$work/data" \
  --ingester.cut-interval=10m --compactor.interval=10m 2>"$out/soak-muninn.log" &
mpid=$!
prometheus --config.file="$work/prom.yml" --web.listen-address=127.0.0.1:29090 \
  --storage.tsdb.path="$work/prom" --web.enable-remote-write-receiver 2>"$out/soak-prometheus.log" &
ppid=$!
trap 'kill $mpid $ppid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  curl -sf 127.0.0.1:29009/ready >/dev/null && curl -sf 127.0.0.1:29090/-/ready >/dev/null && break
  sleep 0.2
done
"$bin/muninn-bench" soak --muninn-url http://127.0.0.1:29009 --muninn-pid "$mpid" \
  --data-dir "$work/data" --prometheus-url http://127.0.0.1:29090 --minutes "$minutes" --speed 10 \
  --report "$out/soak.tsv"
grep -c "uploaded block" "$out/soak-muninn.log" | sed 's/^/blocks uploaded: /'
grep -c " compacted" "$out/soak-muninn.log" | sed "s/^/compaction jobs: /"
