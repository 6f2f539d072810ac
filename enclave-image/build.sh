#!/usr/bin/env bash
# Builds the cleanroom-enclave EIF and writes enclave-image/measurements.json.
#
# Needs Docker and nitro-cli (aws-nitro-enclaves-cli), i.e. an enclave-enabled EC2 instance or a
# build host with the Nitro Enclaves CLI installed: it cannot run on the development machines of
# this repository (see docs/enclave-image.md).
#
#   enclave-image/build.sh                       # unsigned EIF (PCR0, PCR1, PCR2)
#   SIGNING_CERT=cert.pem SIGNING_KEY=key.pem enclave-image/build.sh   # signed EIF (adds PCR8)
#   TAG=cleanroom-enclave:1.0 SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) enclave-image/build.sh
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=enclave-image/build
TAG=${TAG:-cleanroom-enclave:$(git rev-parse --short HEAD 2>/dev/null || echo dev)}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

for tool in docker nitro-cli python3; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is required (see docs/enclave-image.md)" >&2; exit 2; }
done

mkdir -p "$OUT"
docker build --file enclave-image/Dockerfile --tag "$TAG" \
    --build-arg SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" .

sign=()
if [[ -n "${SIGNING_CERT:-}" || -n "${SIGNING_KEY:-}" ]]; then
    [[ -n "${SIGNING_CERT:-}" && -n "${SIGNING_KEY:-}" ]] || { echo "build.sh: set both SIGNING_CERT and SIGNING_KEY" >&2; exit 2; }
    sign=(--signing-certificate "$SIGNING_CERT" --private-key "$SIGNING_KEY")
fi

nitro-cli build-enclave --docker-uri "$TAG" --output-file "$OUT/cleanroom-enclave.eif" "${sign[@]}" \
    | tee "$OUT/build-enclave.out"
python3 enclave-image/measurements.py "$OUT/build-enclave.out" enclave-image/measurements.json \
    --image "$TAG" --eif "$OUT/cleanroom-enclave.eif"
echo "wrote enclave-image/measurements.json; run with: nitro-cli run-enclave --config enclave-image/run-enclave.json"
