#!/usr/bin/env bash
# `make demo`: a whole three-party collaboration on the embedded defaults, as its users would type it.
#
# A bank (labelled customers), a retailer and a telecom operator (features) train a credit-default
# model on the inner join of their data on a hashed customer id, without any of them — or the
# server — seeing another's rows. The script starts `cleanroomd` in a temporary data directory on a
# free loopback port, gives each party its own "machine" (its own CLEANROOM_HOME), and prints every
# command before running it. It ends with each party's decrypted results and verified receipt.
#
# Environment: BIN (folder with cleanroom, cleanroomd, cleanroom-enclave; default: swift build's),
# DEMO_CUSTOMERS (default 4000), DEMO_ROUNDS (boosting rounds, default 40), KEEP=1 to keep the
# working folder, DEMO_DIR to use a given (empty) working folder, DEMO_QUIET=1 for no colours.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN:-$(cd "$ROOT" && swift build --show-bin-path)}"
for tool in cleanroom cleanroomd cleanroom-enclave; do
  [ -x "$BIN/$tool" ] || { echo "demo: $BIN/$tool is missing: run 'swift build' (or 'make demo') first" >&2; exit 2; }
done
export PATH="$BIN:$PATH"
CUSTOMERS="${DEMO_CUSTOMERS:-4000}"
ROUNDS="${DEMO_ROUNDS:-40}"
WORK="${DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/cleanroom-demo.XXXXXX")}"
mkdir -p "$WORK"
SERVER_PID=""

if [ -t 1 ] && [ -z "${DEMO_QUIET:-}" ]; then
  BOLD=$'\033[1m'; DIM=$'\033[2m'; CYAN=$'\033[36m'; GREEN=$'\033[32m'; RESET=$'\033[0m'
else
  BOLD=""; DIM=""; CYAN=""; GREEN=""; RESET=""
fi

cleanup() {
  local status=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    echo "demo FAILED (exit $status); the server log is $WORK/cleanroomd.log" >&2
    [ -f "$WORK/cleanroomd.log" ] && tail -n 20 "$WORK/cleanroomd.log" >&2
  elif [ -z "${KEEP:-}" ] && [ -z "${DEMO_DIR:-}" ]; then
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$RESET"; }

# typed ARGS...: the arguments as they would be typed at a shell prompt, quoted where they must be
# (a space, a `?`, a quote), so that every printed command can be pasted as it is.
typed() {
  local arg out=""
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      out+=" $arg"
    else
      out+=" '${arg//\'/\'\\\'\'}'"
    fi
  done
  printf '%s' "${out# }"
}

# as PARTY CMD...: run CMD on PARTY's machine, printing it as that party would type it.
as() {
  local party="$1"; shift
  printf '%s%s$%s %s\n' "$CYAN" "$party" "$RESET" "$(typed "$@")"
  CLEANROOM_HOME="$WORK/parties/$party" CLEANROOM_SERVER="$URL" "$@"
}

# quietly PARTY CMD...: like `as`, but captures stdout (JSON) for the script to read.
quietly() {
  local party="$1"; shift
  printf '%s%s$%s %s\n' "$CYAN" "$party" "$RESET" "$(typed "$@")" >&2
  CLEANROOM_HOME="$WORK/parties/$party" CLEANROOM_SERVER="$URL" "$@"
}

# field JSON PATH: a value from a JSON document (PATH like party.id).
field() {
  python3 -c 'import json, sys
value = json.loads(sys.argv[1])
for key in sys.argv[2].split("."):
    value = value[key]
print(value)' "$1" "$2"
}

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
URL="http://127.0.0.1:$PORT"
DATA="$WORK/server"

step "The operator starts cleanroomd on its embedded defaults (SQLite, file object store, local KMS, development attestation)"
printf '%soperator$%s %s &\n' "$CYAN" "$RESET" \
  "$(typed cleanroomd serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" --access-log off)"
cleanroomd serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" --access-log off >"$WORK/cleanroomd.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
  curl -sf -m 1 "$URL/healthz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "cleanroomd exited:" >&2; cat "$WORK/cleanroomd.log" >&2; exit 1; }
  sleep 0.1
done
curl -sf -m 1 "$URL/healthz" >/dev/null || { echo "cleanroomd did not become healthy" >&2; exit 1; }
echo "${DIM}listening on $URL${RESET}"

step "Synthetic data: each party's CSV stays on its own machine (fixed seed)"
python3 "$ROOT/scripts/demo_data.py" data --out "$WORK/plaintext" --customers "$CUSTOMERS"

declare -A NAME=([first-bank]="First Bank" [shopmart]="ShopMart" [metro-telecom]="Metro Telecom")
declare -A COLUMNS=(
  [first-bank]="customer_hash:string,income:float,credit_limit:float,months_on_book:integer,defaulted:boolean"
  [shopmart]="customer_hash:string,monthly_spend:float,visits_per_month:float,share_of_luxury:float?,returns_rate:float?"
  [metro-telecom]="customer_hash:string,tenure_months:integer,late_payments:integer,data_gb:float"
)
declare -A DATASET
PARTIES=(first-bank shopmart metro-telecom)

for party in "${PARTIES[@]}"; do
  step "${NAME[$party]} enrolls: keys made on its machine, registered with an operator-issued token"
  printf '%soperator$%s %s\n' "$CYAN" "$RESET" "$(typed cleanroomd admin enroll --data-dir "$DATA")"
  token="$(cleanroomd admin enroll --data-dir "$DATA" 2>/dev/null)"
  echo "${DIM}(token handed to ${NAME[$party]} out of band)${RESET}"
  as "$party" cleanroom keys init --result-key-bits 3072
  as "$party" cleanroom register --token "$token" --name "${NAME[$party]}" --party-id "$party"

  step "${NAME[$party]} declares its dataset and uploads it, encrypted on its own machine"
  created="$(quietly "$party" cleanroom dataset create --name "$party-customers" --columns "${COLUMNS[$party]}" --json)"
  DATASET[$party]="$(field "$created" id)"
  as "$party" cleanroom dataset upload "${DATASET[$party]}" "$WORK/plaintext/$party.csv"
done

step "First Bank proposes the collaboration policy (who joins what, what is trained, who receives what)"
measured="$(quietly first-bank cleanroom enclave measure "$BIN/cleanroom-enclave" --json)"
pcr0="$(field "$measured" Measurements.PCR0)"
python3 "$ROOT/scripts/demo_data.py" policy --out "$WORK/policy.json" --pcr0 "$pcr0" --rounds "$ROUNDS" \
  --min-rows $((CUSTOMERS / 8)) --bank "first-bank:${DATASET[first-bank]}" \
  --retailer "shopmart:${DATASET[shopmart]}" --telco "metro-telecom:${DATASET[metro-telecom]}"
proposed="$(quietly first-bank cleanroom policy propose "$WORK/policy.json" --json)"
COLLABORATION="$(field "$proposed" id)"
DIGEST="$(field "$proposed" digest)"
echo "collaboration $COLLABORATION, policy digest $DIGEST"

for party in "${PARTIES[@]}"; do
  step "${NAME[$party]} reviews the exact policy and approves its digest with its own key"
  as "$party" cleanroom policy approve "$COLLABORATION" --digest "$DIGEST" --yes
done

step "KMS itself now releases First Bank's data keys only to that enclave image (and only First Bank may use the key)"
as first-bank cleanroom kms show

step "First Bank starts the job and watches it: attestation, key release, join, training, delivery"
started="$(quietly first-bank cleanroom job start "$COLLABORATION" --json)"
JOB="$(field "$started" id)"
as first-bank cleanroom job watch "$JOB"
as metro-telecom cleanroom job list "$COLLABORATION"

for party in "${PARTIES[@]}"; do
  step "${NAME[$party]} downloads its results, decrypts them locally and verifies the receipt offline"
  as "$party" cleanroom output download "$JOB" --out "$WORK/results/$party"
  as "$party" cleanroom verify "$WORK/results/$party" --root "$DATA/development-ca/root.pem"
done

step "What each party received"
for party in "${PARTIES[@]}"; do
  echo "${BOLD}${NAME[$party]}${RESET} ($WORK/results/$party):"
  for file in "$WORK/results/$party"/*; do
    case "$file" in
      *.esdk|*/manifest.json|*/policy.json|*/approval-bundle.json|*/receipt.json) continue ;;
    esac
    printf '  %s (%s bytes)\n' "$(basename "$file")" "$(wc -c <"$file" | tr -d ' ')"
    case "$file" in
      */metrics.json) python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))
def show(prefix, value):
    if isinstance(value, dict):
        for k, v in value.items(): show(prefix + k + ".", v)
    elif isinstance(value, float): print(f"    {prefix[:-1]}: {value:.4f}")
    else: print(f"    {prefix[:-1]}: {value}")
show("", m)' "$file" | head -n 20 ;;
      *.csv) head -n 4 "$file" | sed 's/^/    /' ;;
    esac
  done
done
printf '\n%sDone:%s three parties trained one model; nobody saw another party'"'"'s rows, and each verified what it got.\n' "$GREEN" "$RESET"
[ -n "${KEEP:-}${DEMO_DIR:-}" ] && echo "Everything is in $WORK"
exit 0
