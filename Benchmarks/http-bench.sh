#!/usr/bin/env bash
# wrk against cleanroomd and a minimal Hummingbird 2.28.1 server (Benchmarks/Sources/HummingbirdPeer)
# serving the same routes, both release builds, on this machine, alternating server by server and
# scenario by scenario. Prints a Markdown table of medians (requests/s, p99 latency, peak RSS).
#
#   Benchmarks/http-bench.sh                 # BENCH_DURATION=10s BENCH_ROUNDS=3 by default
#   BENCH_DURATION=5s BENCH_ROUNDS=1 Benchmarks/http-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${BENCH_DURATION:-10s}
ROUNDS=${BENCH_ROUNDS:-3}
THREADS=${BENCH_WRK_THREADS:-2}
PORT_CR=18181
PORT_HB=18182
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
echo "building cleanroomd (release, .build-release) and the Hummingbird peer (release, Benchmarks/.build)" >&2
swift build -c release --product cleanroomd --scratch-path .build-release >&2
swift build -c release --package-path Benchmarks >&2
CR_BIN=.build-release/release/cleanroomd
HB_BIN=Benchmarks/.build/release/HummingbirdPeer

# scenario name | path | wrk script | connections
SCENARIOS=(
  "GET /healthz, 64 connections|/healthz||64"
  "GET /healthz, 256 connections|/healthz||256"
  "POST /v1/echo 100 B, 64 connections|/v1/echo|Benchmarks/scripts/post-100b.lua|64"
  "POST /v1/echo 1 MiB, 16 connections|/v1/echo|Benchmarks/scripts/post-1mib.lua|16"
)

start_server() {  # $1 = cleanroomd|hummingbird ; prints the pid
  if [ "$1" = cleanroomd ]; then
    rm -rf "$OUT/data"
    "$CR_BIN" serve --listen 127.0.0.1:$PORT_CR --data-dir "$OUT/data" --access-log off >/dev/null 2>"$OUT/cr.err" &
  else
    PORT=$PORT_HB "$HB_BIN" >/dev/null 2>"$OUT/hb.err" &
  fi
  local pid=$!
  local port=$([ "$1" = cleanroomd ] && echo $PORT_CR || echo $PORT_HB)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  echo $pid
}

to_ms() {  # wrk latency like 1.23ms / 456.78us / 1.02s -> milliseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

run_one() {  # $1 server, $2 path, $3 script, $4 connections -> "rps p99ms rssMiB"
  local pid port args
  pid=$(start_server "$1")
  port=$([ "$1" = cleanroomd ] && echo $PORT_CR || echo $PORT_HB)
  args=(-t"$THREADS" -c"$4" -d"$DURATION" --latency)
  [ -n "$3" ] && args+=(-s "$3")
  wrk "${args[@]}" -d2s "http://127.0.0.1:$port$2" >/dev/null 2>&1 || true  # warm-up
  wrk "${args[@]}" "http://127.0.0.1:$port$2" >"$OUT/wrk.txt" 2>&1
  local rps p99 rss
  rps=$(awk '/Requests\/sec/ { print $2 }' "$OUT/wrk.txt")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$OUT/wrk.txt")")
  rss=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' /proc/$pid/status)
  if grep -q "Non-2xx\|Socket errors" "$OUT/wrk.txt"; then grep "Non-2xx\|Socket errors" "$OUT/wrk.txt" | sed "s/^/  $1: /" >&2; fi
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  echo "$rps $p99 $rss"
}

echo "| scenario | server | requests/s (median) | p99 latency ms (median) | peak RSS MiB (median) | RPS ratio cleanroomd/HB |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
for scenario in "${SCENARIOS[@]}"; do
  IFS='|' read -r name path script conns <<<"$scenario"
  : >"$OUT/cleanroomd.txt"; : >"$OUT/hummingbird.txt"
  for round in $(seq "$ROUNDS"); do
    # Alternate which server goes first in each round.
    if [ $((round % 2)) = 1 ]; then order="cleanroomd hummingbird"; else order="hummingbird cleanroomd"; fi
    for server in $order; do
      result=$(run_one "$server" "$path" "$script" "$conns")
      echo "  round $round $name $server: $result" >&2
      echo "$result" >>"$OUT/$server.txt"
    done
  done
  cr_rps=$(awk '{ print $1 }' "$OUT/cleanroomd.txt" | median)
  hb_rps=$(awk '{ print $1 }' "$OUT/hummingbird.txt" | median)
  for server in cleanroomd hummingbird; do
    rps=$(awk '{ print $1 }' "$OUT/$server.txt" | median)
    p99=$(awk '{ print $2 }' "$OUT/$server.txt" | median)
    rss=$(awk '{ print $3 }' "$OUT/$server.txt" | median)
    ratio=$([ $server = cleanroomd ] && awk -v a="$cr_rps" -v b="$hb_rps" 'BEGIN { printf "%.2f", a / b }' || echo "")
    echo "| $name | $server | $rps | $p99 | $rss | $ratio |"
  done
done
