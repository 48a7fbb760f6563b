#!/usr/bin/env bash
# WAL replay (issue 13), release build on loopback: the corpus x COPIES (default 60: 57,000
# series, 82M samples, 2 h of real data each) pushed into `muninn all` and into Prometheus 2.42
# (remote-write receiver), both killed with SIGKILL, then each restarted alone: seconds until
# ready, peak RSS during the replay (VmHWM when ready) and RSS once settled (10 s later), beside
# each one's RSS before the kill; RSS is also split into anonymous and file-backed pages (both
# keep closed head chunks in mmapped files), with Muninn's estimate of its head structures.
#   bench/replay.sh          (COPIES=60 MUNINN_BIN=<binary, default this tree's build>)
set -euo pipefail
cd "$(dirname "$0")/.."
copies="${COPIES:-60}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/muninn-target}"
cargo build -q --release -p muninn -p muninn-bench
bin="$CARGO_TARGET_DIR/release"
muninn_bin="${MUNINN_BIN:-$bin/muninn}"
out="$PWD/bench-out"
work="$(mktemp -d)"
mkdir -p "$out"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'cleanup; rm -rf "$work"' EXIT

kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

start_muninn() {
  "$muninn_bin" all --http-addr=127.0.0.1:29019 --grpc-addr=127.0.0.1:29105 \
    --data-dir="$work/muninn" --ingester.cut-interval=5s >>"$work/muninn.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  ready=http://127.0.0.1:29019/ready
}
start_prometheus() {
  prometheus --config.file="$work/prometheus.yml" --web.listen-address=127.0.0.1:29091 \
    --storage.tsdb.path="$work/prom" --web.enable-remote-write-receiver >>"$work/prom.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  ready=http://127.0.0.1:29091/-/ready
}
wait_ready() { # prints seconds from now until $ready answers 200
  local t0 t1
  t0=$(date +%s.%N)
  for _ in $(seq 60000); do
    if curl -sf -o /dev/null "$ready"; then
      t1=$(date +%s.%N)
      echo "$t1 - $t0" | bc
      return 0
    fi
    sleep 0.05
  done
  echo "timed out waiting for $ready" >&2
  exit 1
}
split() { # RSS of $1 as "anon MB + file MB"
  echo "$(($(kb "$1" RssAnon) / 1000)) + $(($(kb "$1" RssFile) / 1000))"
}
report() { # name, rss before kill (kB), seconds to ready, split before kill
  local hwm rss
  hwm=$(kb "$pid" VmHWM)
  sleep 10
  rss=$(kb "$pid" VmRSS)
  printf '| %s | %.1f s | %.0f MB | %.0f MB (%s) | %.0f MB (%s) | %.2f |\n' "$1" "$3" \
    "$((hwm / 1000))" "$((rss / 1000))" "$(split "$pid")" "$(($2 / 1000))" "$4" \
    "$(echo "$hwm / $rss" | bc -l)" | tee -a "$out/replay.txt"
}

printf 'global: {scrape_interval: 1h}\n' >"$work/prometheus.yml"
echo "== replay: corpus x $copies, $muninn_bin vs prometheus" | tee "$out/replay.txt"
start_muninn
mpid=$pid
wait_ready >/dev/null
"$bin/muninn-bench" push --url http://127.0.0.1:29019/api/v1/push --pid "$mpid" \
  --copies "$copies" --concurrency 4 | tee -a "$out/replay.txt"
start_prometheus
ppid=$pid
wait_ready >/dev/null
"$bin/muninn-bench" push --url http://127.0.0.1:29091/api/v1/write --pid "$ppid" \
  --copies "$copies" --concurrency 4 | tee -a "$out/replay.txt"
sleep 5
m_before=$(kb "$mpid" VmRSS)
p_before=$(kb "$ppid" VmRSS)
m_split=$(split "$mpid")
p_split=$(split "$ppid")
echo "muninn head structures before the kill: $(curl -s http://127.0.0.1:29019/metrics |
  awk '/^muninn_ingester_head_heap_bytes/ {s += $2} END {printf "%.0f MB", s / 1e6}')" |
  tee -a "$out/replay.txt"
kill -9 "$mpid" "$ppid"
wait "$mpid" "$ppid" 2>/dev/null || true

echo "| process | replay to ready | peak RSS during replay | RSS after (anon + file) | RSS before the kill (anon + file) | peak / after |" | tee -a "$out/replay.txt"
echo "|---|---|---|---|---|---|" | tee -a "$out/replay.txt"
start_muninn
secs=$(wait_ready)
report muninn "$m_before" "$secs" "$m_split"
kill -9 "$pid"
start_prometheus
secs=$(wait_ready)
report prometheus "$p_before" "$secs" "$p_split"
