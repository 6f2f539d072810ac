#!/usr/bin/env bash
# Object store benchmark: streamed put + get of SIZE_MIB (default 1024) through FileObjectStore
# and through S3ObjectStore to moto_server, against `dd conv=fsync` writing the same bytes to
# the same disk. RUNS runs each (default 3); prints every run and the medians.
#   make bench-objectstore            (or: Benchmarks/objectstore/bench.sh)
# Environment: SIZE_MIB, RUNS, S3_RUNS (0: file store only), SETTLE_SECONDS, BENCH_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
S3_RUNS=${S3_RUNS:-$RUNS}  # 0 skips moto
DIR=${BENCH_DIR:-$(mktemp -d -p "${TMPDIR:-/tmp}" objectstore-bench.XXXXXX)}
PY=${PYTHON:-.venv/bin/python}
trap 'rm -rf "$DIR"' EXIT
swift build -c release --product objectstore-bench >/dev/null
BIN=.build/release/objectstore-bench
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
field() { $PY -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }

echo "disk: $(df -h "$DIR" | tail -1)"
dd_rates=(); file_put=(); file_get=(); file_rss=(); ratios=(); s3_put=(); s3_get=(); s3_rss=()
# Before every timed write: flush and let the (virtual) disk settle, so a measurement does not
# pay for the previous one's writeback or the freeing of its deleted file.
settle() { sync; sleep "${SETTLE_SECONDS:-3}"; }
run_dd() {
  local out secs
  settle
  out=$(dd if=/dev/zero of="$DIR/dd.bin" bs=1M count="$SIZE_MIB" conv=fsync 2>&1 | tail -1)
  secs=$(echo "$out" | sed -E 's/.* copied, ([0-9.]+) s.*/\1/')
  rm -f "$DIR/dd.bin"
  awk -v m="$SIZE_MIB" -v s="$secs" 'BEGIN {printf "%.1f", m/s}'
}
for i in $(seq "$RUNS"); do
  # Alternate which goes first, so neither always inherits the other's writeback.
  if (( i % 2 )); then rate=$(run_dd); settle; j=$($BIN file "$DIR/store" "$SIZE_MIB")
  else settle; j=$($BIN file "$DIR/store" "$SIZE_MIB"); rate=$(run_dd); fi
  fp=$(echo "$j" | field put_mib_s)
  ratio=$(awk -v a="$fp" -v b="$rate" 'BEGIN {printf "%.0f", 100*a/b}')
  echo "run $i dd ${rate} MiB/s; file $j; put/dd ${ratio}%"
  dd_rates+=("$rate"); file_put+=("$fp"); ratios+=("$ratio")
  file_get+=("$(echo "$j" | field get_mib_s)"); file_rss+=("$(echo "$j" | field peak_rss_mib)")
done

if (( S3_RUNS > 0 )); then
PORT=$($PY -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
.venv/bin/moto_server -H 127.0.0.1 -p "$PORT" >"$DIR/moto.log" 2>&1 & MOTO=$!
trap 'kill -9 $MOTO 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 50); do $PY -c "import socket; socket.create_connection(('127.0.0.1',$PORT))" 2>/dev/null && break; sleep 0.2; done
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
$PY -c "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:$PORT').create_bucket(Bucket='bench')"
for i in $(seq "$S3_RUNS"); do
  settle
  j=$($BIN s3 "http://127.0.0.1:$PORT" bench "$SIZE_MIB"); echo "run $i moto $j"
  s3_put+=("$(echo "$j" | field put_mib_s)"); s3_get+=("$(echo "$j" | field get_mib_s)"); s3_rss+=("$(echo "$j" | field peak_rss_mib)")
done
fi

m() { printf '%s\n' "$@" | median; }
DD=$(m "${dd_rates[@]}"); FP=$(m "${file_put[@]}")
echo "median dd conv=fsync: $DD MiB/s"
echo "median FileObjectStore put: $FP MiB/s ($(awk -v a="$FP" -v b="$DD" 'BEGIN {printf "%.0f", 100*a/b}')% of median dd; median of per-run put/dd ratios $(m "${ratios[@]}")%), get: $(m "${file_get[@]}") MiB/s, peak RSS $(m "${file_rss[@]}") MiB"
if (( S3_RUNS > 0 )); then
  echo "median S3ObjectStore→moto put: $(m "${s3_put[@]}") MiB/s, get: $(m "${s3_get[@]}") MiB/s, peak RSS $(m "${s3_rss[@]}") MiB"
fi
