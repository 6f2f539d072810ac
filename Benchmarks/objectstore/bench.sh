#!/usr/bin/env bash
# Object store benchmark: streamed put + get of SIZE_MIB (default 1024) through FileObjectStore
# and through S3ObjectStore to moto_server, against `dd conv=fsync` writing the same bytes to
# the same disk. RUNS runs each (default 3); prints every run and the medians.
#   make bench-objectstore            (or: Benchmarks/objectstore/bench.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
DIR=${BENCH_DIR:-$(mktemp -d -p "${TMPDIR:-/tmp}" objectstore-bench.XXXXXX)}
PY=${PYTHON:-.venv/bin/python}
swift build -c release --product objectstore-bench >/dev/null
BIN=.build/release/objectstore-bench
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
field() { $PY -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }

echo "disk: $(df -h "$DIR" | tail -1)"
dd_rates=(); file_put=(); file_get=(); file_rss=(); s3_put=(); s3_get=(); s3_rss=()
for i in $(seq "$RUNS"); do
  out=$(dd if=/dev/zero of="$DIR/dd.bin" bs=1M count="$SIZE_MIB" conv=fsync 2>&1 | tail -1)
  secs=$(echo "$out" | sed -E 's/.* copied, ([0-9.]+) s.*/\1/')
  rate=$(awk -v m="$SIZE_MIB" -v s="$secs" 'BEGIN {printf "%.1f", m/s}')
  rm -f "$DIR/dd.bin"; dd_rates+=("$rate")
  j=$($BIN file "$DIR/store" "$SIZE_MIB"); echo "run $i dd ${rate} MiB/s; file $j"
  file_put+=("$(echo "$j" | field put_mib_s)"); file_get+=("$(echo "$j" | field get_mib_s)"); file_rss+=("$(echo "$j" | field peak_rss_mib)")
done

PORT=$($PY -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
.venv/bin/moto_server -H 127.0.0.1 -p "$PORT" >"$DIR/moto.log" 2>&1 & MOTO=$!
trap 'kill -9 $MOTO 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 50); do $PY -c "import socket; socket.create_connection(('127.0.0.1',$PORT))" 2>/dev/null && break; sleep 0.2; done
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
$PY -c "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:$PORT').create_bucket(Bucket='bench')"
for i in $(seq "$RUNS"); do
  j=$($BIN s3 "http://127.0.0.1:$PORT" bench "$SIZE_MIB"); echo "run $i moto $j"
  s3_put+=("$(echo "$j" | field put_mib_s)"); s3_get+=("$(echo "$j" | field get_mib_s)"); s3_rss+=("$(echo "$j" | field peak_rss_mib)")
done

m() { printf '%s\n' "$@" | median; }
DD=$(m "${dd_rates[@]}"); FP=$(m "${file_put[@]}")
echo "median dd conv=fsync: $DD MiB/s"
echo "median FileObjectStore put: $FP MiB/s ($(awk -v a="$FP" -v b="$DD" 'BEGIN {printf "%.0f", 100*a/b}')% of dd), get: $(m "${file_get[@]}") MiB/s, peak RSS $(m "${file_rss[@]}") MiB"
echo "median S3ObjectStore→moto put: $(m "${s3_put[@]}") MiB/s, get: $(m "${s3_get[@]}") MiB/s, peak RSS $(m "${s3_rss[@]}") MiB"
