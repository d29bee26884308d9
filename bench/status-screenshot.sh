#!/usr/bin/env bash
# A headless-Chromium screenshot of a degraded /status page (out of CI: a human looks at it).
#
#   bash bench/status-screenshot.sh [OUT.png]        (default: target/status-degraded.png)
#
# Starts the sandbox (`rocgw serve` with no configuration: test PKI, in-process simulator) in a
# scratch folder on free ports, makes a few good calls, then makes AMC 99999991 stop answering
# (the simulator resets every connection: PUT /faults/99999991 on its admin port) and calls it
# until its circuit opens. /status then says DEGRADED with the open circuit and the AMC failure
# rate while /readyz stays 200; the page is rendered with Debian's `chromium --headless`.
# Needs: curl, chromium (apt-get install chromium), a built rocgw (ROCGW=path, else the newest
# of target/release/rocgw and target/debug/rocgw, under CARGO_TARGET_DIR if set).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${1:-target/status-degraded.png}"
ROCGW="${ROCGW:-}"
if [ -z "$ROCGW" ]; then
  # The newest of the release and debug builds.
  dir="${CARGO_TARGET_DIR:-target}"
  for c in "$dir/release/rocgw" "$dir/debug/rocgw"; do
    if [ -x "$c" ] && { [ -z "$ROCGW" ] || [ "$c" -nt "$ROCGW" ]; }; then ROCGW="$c"; fi
  done
fi
[ -n "$ROCGW" ] || { echo "build rocgw first (cargo build) or set ROCGW" >&2; exit 2; }
BROWSER="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$BROWSER" ] || { echo "chromium is needed: apt-get install chromium" >&2; exit 2; }

work="$(mktemp -d)"
pid=""
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$ROCGW" serve --data-dir "$work/sandbox" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  >"$work/out.log" 2>&1 &
pid=$!
# The URLs the sandbox prints: `rocgw: <what> listening on <url>`.
url_of() { sed -n "s|^rocgw: $1 listening on \(http://[^ ]*\).*|\1|p" "$work/out.log" | head -n1; }
for _ in $(seq 1 300); do
  gw="$(url_of gateway)"
  admin="$(url_of admin)"
  sim="$(url_of 'simulator admin')"
  [ -n "$gw" ] && [ -n "$admin" ] && [ -n "$sim" ] &&
    curl -fsS "$admin/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/out.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "${gw:-}" ] || { echo "the sandbox did not start" >&2; cat "$work/out.log" >&2; exit 1; }

call() {
  curl -sS -o /dev/null -w '%{http_code} ' \
    -H 'Content-Type: application/soap+xml; charset=utf-8' \
    -H @"$work/sandbox/caller.header" \
    --data-binary @"$work/sandbox/idb-request.xml" "$gw/amc/$1/idb"
}
echo "good calls:"
for _ in 1 2 3; do call 99999991; call 99999992; done
echo
curl -fsS -X PUT -H 'Content-Type: application/json' -d '{"reset_rate": 1.0}' \
  "$sim/faults/99999991" >/dev/null
echo "calls to the AMC that stopped answering:"
for _ in $(seq 1 8); do call 99999991; done
echo
echo "/readyz: $(curl -sS -o /dev/null -w '%{http_code}' "$admin/readyz")"
curl -fsS "$admin/status" | sed -n '/"state"/,/"version"/p'

mkdir -p "$(dirname "$OUT")"
# --no-sandbox: Chromium refuses to run as root otherwise (containers, CI machines).
"$BROWSER" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --window-size=1280,1600 --screenshot="$work/shot.png" "$admin/status" >/dev/null 2>&1
mv "$work/shot.png" "$OUT"
echo "screenshot: $OUT (rocgw: $ROCGW)"
