#!/usr/bin/env bash
# bench/gateway_ab.sh — two rocgw builds side by side through the gateway (NOT run in CI; see
# bench/README.md, "Before and after a change").
#
# One test PKI, one simulator (`rocgw sim`: annuaire + AMC 99999991, no faults), then ROUNDS
# rounds alternating build A and build B as the gateway (`rocgw serve --config`). Each round
# runs the same `rocgw load` (the generator is build B's for both, so only the gateway differs):
#   * `annuaire/99999991`: the /annuaire pass-through (mutual TLS with AUTH_CLI, no signature);
#   * `99999991/idb`: the signed AMC path (a fresh RSA-2048 assertion per request, no reuse).
# The gateway is pinned to CPU $GW_CPU, the simulator and the generator to CPU $LOAD_CPU.
# Prints req/s, p50 and p99 (ms) and the gateway's CPU per 1,000 requests (utime + stime from
# /proc/PID/stat), per round, then the B/A ratios of the medians.
#
# Usage (from the repository root):
#   ROCGW_A=/tmp/before/rocgw ROCGW_B=target/release/rocgw bash bench/gateway_ab.sh
#   # one build, two configurations (B checks the AMC answers' signatures):
#   ROCGW_A=target/release/rocgw B_AMC='response_signature = "required"' bash bench/gateway_ab.sh
# Environment: ROUNDS=3, DURATION=10s, CONCURRENCY=16, GW_CPU=0, LOAD_CPU=1, AB_DIR (work folder),
# A_AMC / B_AMC (lines added to the [amc] section of A's / B's configuration). The simulator
# signs its answers (osi/amc-sign) in every run.
# Needs: bash, coreutils (taskset from util-linux), curl, awk, python3.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
A=${ROCGW_A:?set ROCGW_A to the first rocgw binary}
B=${ROCGW_B:-$ROOT/target/release/rocgw}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONC=${CONCURRENCY:-16}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
D=${AB_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/rocgw-ab.XXXXXX")}
for bin in "$A" "$B"; do [[ -x $bin ]] || { echo "ab: $bin is not executable" >&2; exit 2; }; done

SIM_PID= GW_PID=
cleanup() {
  for p in $GW_PID $SIM_PID; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

wait_addr() { # what secs file → ADDR of "<what> listening on scheme://ADDR"
  local i addr
  for ((i = 0; i < $2 * 10; i++)); do
    addr=$(sed -n "s|^.*$1 listening on [a-z]*://\([^/]*\).*|\1|p" "$3" | head -n1)
    [[ -n $addr ]] && { echo "$addr"; return 0; }
    sleep 0.1
  done
  return 1
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

PKI=$D/pki
"$B" pki init --dir "$PKI" >"$D/pki.log" 2>&1
{ sim_head "$PKI" 127.0.0.1:0
  cat <<EOF
[[amc]]
numero = "99999991"
listen = "127.0.0.1:0"
services = ["idb"]
[signing]
cert = "$PKI/osi/amc-sign.pem"
key = "$PKI/osi/amc-sign.key"
EOF
} >"$D/sim.toml"
taskset -c "$LOAD_CPU" "$B" sim --config "$D/sim.toml" >"$D/sim.out" 2>"$D/sim.log" &
SIM_PID=$!
wait_addr "annuaire" 30 "$D/sim.out" >/dev/null || { echo "ab: the simulator did not start" >&2; exit 2; }
ANNUAIRE=$(sed -n 's|^rocgw sim: annuaire listening on ||p' "$D/sim.out")
for tag in A B; do
extra=${A_AMC:-}; [[ $tag == B ]] && extra=${B_AMC:-}
cat >"$D/rocgw-$tag.toml" <<EOF
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[identity.auth_cli]
p12 = "$PKI/org/auth_cli.p12"
password_file = "$PKI/secrets/p12-password"
[identity.sign]
p12 = "$PKI/org/sign.p12"
password_file = "$PKI/secrets/p12-password"
[trust]
amc_anchors = ["$PKI/osi/anchors.pem"]
[amc]
endpoint_hosts = ["localhost"]
$extra
[annuaire]
url = "$ANNUAIRE"
[log]
level = "warn"
EOF
done

# One gateway run: prints "req_s p50_ms p99_ms cpu_ms_per_1000" for each of the two mixes.
run_gateway() {
  local bin=$1 tag=$2 gw admin mix t0 t1 ok
  taskset -c "$GW_CPU" "$bin" serve --config "$D/rocgw-$tag.toml" >"$D/gw-$tag.out" 2>"$D/gw-$tag.log" &
  GW_PID=$!
  admin=$(wait_addr "rocgw: admin" 30 "$D/gw-$tag.out") || { echo "ab: gateway $tag did not start" >&2; exit 2; }
  gw=$(wait_addr "rocgw: gateway" 30 "$D/gw-$tag.out")
  for ((i = 0; i < 100; i++)); do curl -fsS "http://$admin/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  for mix in annuaire/99999991 99999991/idb; do
    t0=$(cpu_ticks "$GW_PID")
    taskset -c "$LOAD_CPU" "$B" load --target "$gw" --mix "$mix" --concurrency "$CONC" \
      --duration "$DURATION" --warmup 2s --quiet --json "$D/load.json" >/dev/null 2>"$D/load.log"
    t1=$(cpu_ticks "$GW_PID")
    python3 - "$D/load.json" "$((t1 - t0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); ticks, hz = int(sys.argv[2]), int(sys.argv[3])
total = d["requests"] + d.get("warmup_requests", 0)
assert d["errors"] == 0, f"{d['errors']} errors: {d.get('errors_by_kind')}"
print(f'{d["throughput_rps"]:.0f} {d["latency_ms"]["p50"]:.2f} {d["latency_ms"]["p99"]:.2f} {1000 * ticks / hz / max(total, 1) * 1000:.1f}')
PY
  done
  kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true; GW_PID=
}

echo "gateway CPU $GW_CPU, simulator and load CPU $LOAD_CPU; $ROUNDS rounds of $DURATION at concurrency $CONC"
echo "A = $A"
echo "B = $B"
printf '%-6s %-5s %-9s %9s %8s %8s %16s\n' round build path "req/s" "p50 ms" "p99 ms" "CPU ms/1000 req"
: >"$D/results"
for ((r = 1; r <= ROUNDS; r++)); do
  for tag in A B; do
    bin=$A; [[ $tag == B ]] && bin=$B
    mapfile -t lines < <(run_gateway "$bin" "$tag")
    for k in 0 1; do
      path=annuaire; ((k == 1)) && path=amc-idb
      read -r rps p50 p99 cpu <<<"${lines[$k]}"
      printf '%-6s %-5s %-9s %9s %8s %8s %16s\n' "$r" "$tag" "$path" "$rps" "$p50" "$p99" "$cpu"
      echo "$tag $path $rps $p50 $p99 $cpu" >>"$D/results"
    done
  done
done
python3 - "$D/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print("\nmedians and B/A ratios")
for path in ("annuaire", "amc-idb"):
    med = {t: [statistics.median(float(r[i]) for r in rows if r[0] == t and r[1] == path) for i in (2, 3, 4, 5)] for t in "AB"}
    a, b = med["A"], med["B"]
    print(f"{path:9} req/s A {a[0]:.0f} B {b[0]:.0f} (B/A {b[0]/a[0]:.3f}); p99 A {a[2]:.2f} B {b[2]:.2f} ms; "
          f"CPU/1000 A {a[3]:.1f} B {b[3]:.1f} ms (B/A {b[3]/a[3]:.3f})")
PY
