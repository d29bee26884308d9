#!/usr/bin/env bash
# bench/soak.sh — bounded soak test of rocgw (NOT run in CI; see bench/README.md, "Soak").
#
# Runs real processes on 127.0.0.1 (free ports): a test PKI (`rocgw pki init`), the AMC and
# annuaire simulator (`rocgw sim`), the gateway (`rocgw serve --config`) and an open-loop load
# (`rocgw load --rate`) for SOAK_SECONDS. While the load runs:
#
#   * every SOAK_SAMPLE_SECONDS the gateway's RSS (VmRSS) is written to rss.csv;
#   * at 1/3 of the run both identities are rotated: org/ → org/*-renewed (the structure's
#     renewed certificates: a reload keeps the structures, so it refuses another structure's),
#     atomic `mv` over the configured P12 files, then SIGHUP; /status must show the new serials;
#   * at 1/2 the audit log is rotated as logrotate does it: `mv audit.jsonl audit.jsonl.1`, then
#     SIGUSR1; the next records must start a new audit.jsonl;
#   * at 2/3 the IGC OSI CRL bundle is updated: it gains AC-SERVEUR's CRL (which revokes the
#     test PKI's `server-revoked` certificate), atomic `mv`, no signal: the timed file check
#     ([reload] check_interval_s) must pick it up. Proof: /status lists the new CRL, and a probe
#     to AMC 99999993 (which serves the revoked certificate) goes from HTTP 200 before the
#     update to the `upstream-cert-revoked` fault after.
#
# It then asserts: no failed request (load errors and warm-up errors = 0; the simulator refused
# nothing; no gateway fault except the one expected revoked probe; no failed reload; every
# audited call after the rotation signed with the new SIGN serial; the two audit files together
# hold one ok record per call the simulator accepted: none lost), flat memory (RSS at the end
# minus RSS after warm-up below both SOAK_MAX_RSS_GROWTH_PCT % of the warm-up RSS and
# SOAK_MAX_RSS_GROWTH_MIB MiB), and a clean stop (SIGTERM → exit 0). Prints a summary; exit 1 on
# any failure, 2 on a setup problem.
#
# Usage (from the repository root, after `cargo build --release`):
#   bash bench/soak.sh                       # 300 s at 150 req/s
#   SOAK_SECONDS=60 bash bench/soak.sh       # quick run
# Environment:
#   SOAK_SECONDS=300            measured duration of the load (plus its 2 s warm-up)
#   SOAK_RATE=150               open-loop request rate (req/s)
#   SOAK_WARMUP_SECONDS=        RSS baseline taken this long after the load starts
#                               (default: 10 % of SOAK_SECONDS, between 10 and 30)
#   SOAK_SAMPLE_SECONDS=10      RSS sampling period
#   SOAK_MAX_RSS_GROWTH_PCT=20  memory bounds (both must hold)
#   SOAK_MAX_RSS_GROWTH_MIB=16
#   SOAK_DIR=                   work folder (default: a new mktemp -d folder)
#   SOAK_KEEP=0                 1: keep the work folder (it is always kept on failure)
#   ROCGW=target/release/rocgw  the binary under test
#
# Needs: bash, coreutils, curl, awk, python3 (JSON only).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
ROCGW=${ROCGW:-$ROOT/target/release/rocgw}
S=${SOAK_SECONDS:-300}
RATE=${SOAK_RATE:-150}
SAMPLE=${SOAK_SAMPLE_SECONDS:-10}
MAX_PCT=${SOAK_MAX_RSS_GROWTH_PCT:-20}
MAX_MIB=${SOAK_MAX_RSS_GROWTH_MIB:-16}
KEEP=${SOAK_KEEP:-0}
LOAD_WARMUP=2 # rocgw load's own warm-up (not in its figures, but checked for errors)
CHECK_INTERVAL=5 # [reload] check_interval_s of the gateway under test
if [[ -z ${SOAK_WARMUP_SECONDS:-} ]]; then
  WARMUP=$((S / 10))
  ((WARMUP < 10)) && WARMUP=10
  ((WARMUP > 30)) && WARMUP=30
else
  WARMUP=$SOAK_WARMUP_SECONDS
fi
ROTATE_AT=$((LOAD_WARMUP + S / 3))
AUDIT_AT=$((LOAD_WARMUP + S / 2))
CRL_AT=$((LOAD_WARMUP + 2 * S / 3))

die() { echo "soak: setup error: $*" >&2; exit 2; }
log() { printf 'soak [%4ss] %s\n' "$(elapsed)" "$*"; }
FAILURES=()
fail() { FAILURES+=("$*"); echo "soak: FAIL: $*" >&2; }

[[ -x $ROCGW ]] || die "$ROCGW not found: run 'cargo build --release' first (or set ROCGW)"
for tool in curl awk python3; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
((S >= 30)) || die "SOAK_SECONDS must be at least 30"
((WARMUP < ROTATE_AT)) || die "the warm-up ($WARMUP s) must end before the rotation ($ROTATE_AT s)"

D=${SOAK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/rocgw-soak.XXXXXX")}
mkdir -p "$D/certs" "$D/trust"
PKI=$D/pki

# --- processes and cleanup -------------------------------------------------------------------
SIM_PID= GW_PID= LOAD_PID=
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }
# A child is alive when its /proc entry exists and is not a zombie.
alive() { local st; st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1; [[ $st != Z ]]; }
cleanup() {
  local rc=$?
  for p in $LOAD_PID $GW_PID $SIM_PID; do
    if alive "$p"; then kill "$p" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  if ((rc == 0)) && [[ $KEEP != 1 ]]; then
    rm -rf "$D"
  else
    echo "soak: work folder kept: $D" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits up to $2 seconds for "$1 listening on <scheme>://ADDR" in file $3; prints ADDR.
wait_addr() {
  local what=$1 secs=$2 file=$3 i addr
  for ((i = 0; i < secs * 10; i++)); do
    addr=$(sed -n "s|^.*$what listening on [a-z]*://\([^/]*\).*|\1|p" "$file" | head -n1)
    [[ -n $addr ]] && { echo "$addr"; return 0; }
    sleep 0.1
  done
  return 1
}

# --- JSON and Prometheus helpers -------------------------------------------------------------
# pyjson FILE EXPR: evaluates a Python expression over the JSON document `d`.
pyjson() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
# prom FILE 'name{labels}': the value of one exact series (0 when absent).
prom() { awk -v k="$2" '$1 == k { v = $2; f = 1 } END { print (f ? v : 0) }' "$1"; }
# prom_sum FILE name: the sum of every series of a metric.
prom_sum() { awk -v n="$2" 'index($1, n "{") == 1 || $1 == n { s += $2 } END { print s + 0 }' "$1"; }
status() { curl -fsS "http://$ADMIN/status" >"$D/status.json"; }
metrics() { curl -fsS "http://$ADMIN/metrics" >"$1"; }
sim_metrics() { curl -fsS "http://$SIM_ADMIN/metrics" >"$1"; }
serial_of() { pyjson "$D/status.json" "[i['serial'] for i in d['identities'] if i['name'] == 'identity.$1'][0]"; }
manifest_serial() { pyjson "$PKI/manifest.json" "[e['serial'] for e in d['files'] if e['path'] == '$1'][0]"; }
# Copies $1 to $2 the way an operator should: a temporary file in the same folder, then mv.
install_atomic() { cp "$1" "$2.tmp.$$" && chmod 600 "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"; }
kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# --- 1. test PKI, simulator, gateway ---------------------------------------------------------
echo "soak: ${S} s at ${RATE} req/s; work folder $D"
"$ROCGW" pki init --dir "$PKI" >"$D/pki.log" 2>&1 || die "rocgw pki init failed: $(cat "$D/pki.log")"
PASS=$PKI/secrets/p12-password
# The gateway's credentials are copies: rotation replaces them.
install_atomic "$PKI/org/auth_cli.p12" "$D/certs/auth_cli.p12"
install_atomic "$PKI/org/sign.p12" "$D/certs/sign.p12"
# The IGC OSI CRLs as a daily job would have left them before the update: the root's and
# AC-SERVICES-APPLICATIFS', not yet AC-SERVEUR's (the soft policy allows an unknown status).
cat "$PKI/osi/root.crl.pem" "$PKI/osi/ac-services-applicatifs.crl.pem" >"$D/trust/osi.crls.pem.new"
mv -f "$D/trust/osi.crls.pem.new" "$D/trust/osi.crls.pem"
OLD_SIGN=$(manifest_serial org/sign.pem)
NEW_SIGN=$(manifest_serial org/sign-renewed.pem)
OLD_AUTH=$(manifest_serial org/auth_cli.pem)
NEW_AUTH=$(manifest_serial org/auth_cli-renewed.pem)

# The simulator: AMCs 99999991 (no fault) and 99999992 (20 ms + exponential 30 ms latency) take
# the load; AMC 99999993 serves the revoked server certificate and only gets the probes.
{ sim_head "$PKI" 127.0.0.1:0
  cat <<EOF
revoked = { cert = "$PKI/negative/server-revoked.chain.pem", key = "$PKI/negative/server-revoked.key" }
[[amc]]
numero = "99999991"
listen = "127.0.0.1:0"
services = ["idb", "simulation", "clc", "annulation"]
[[amc]]
numero = "99999992"
listen = "127.0.0.1:0"
services = ["idb", "clc"]
[amc.faults]
latency_ms = 20
latency_jitter_ms = 30
latency_distribution = "exponential"
[[amc]]
numero = "99999993"
listen = "127.0.0.1:0"
services = ["idb"]
[amc.faults]
certificate = "revoked"
EOF
} >"$D/sim.toml"
"$ROCGW" sim --config "$D/sim.toml" >"$D/sim.out" 2>"$D/sim.log" &
SIM_PID=$!
SIM_ADMIN=$(wait_addr "admin" 30 "$D/sim.out") || die "the simulator did not start: $(tail -n3 "$D/sim.log")"
wait_addr "annuaire" 30 "$D/sim.out" >/dev/null || die "the simulator did not start its annuaire"
ANNUAIRE=$(sed -n 's|^rocgw sim: annuaire listening on ||p' "$D/sim.out")

# The gateway: AMC endpoints from the simulated annuaire (re-asked every 20 s, so AUTH_CLI is
# used again after the rotation), an audit log (signing serial of every call), a 5 s file check.
cat >"$D/rocgw.toml" <<EOF
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[identity.auth_cli]
p12 = "$D/certs/auth_cli.p12"
password_file = "$PASS"
[identity.sign]
p12 = "$D/certs/sign.p12"
password_file = "$PASS"
[trust]
amc_anchors = ["$PKI/osi/anchors.pem"]
crls = ["$D/trust/osi.crls.pem"]
[amc]
endpoint_hosts = ["localhost"]
[annuaire]
url = "$ANNUAIRE"
cache_ttl_s = 20
[audit]
file = "$D/audit.jsonl"
[reload]
check_interval_s = $CHECK_INTERVAL
EOF
"$ROCGW" serve --config "$D/rocgw.toml" >"$D/gateway.out" 2>"$D/gateway.log" &
GW_PID=$!
ADMIN=$(wait_addr "rocgw: admin" 30 "$D/gateway.out") || die "the gateway did not start: $(tail -n3 "$D/gateway.log")"
GATEWAY=$(wait_addr "rocgw: gateway" 30 "$D/gateway.out") || die "the gateway did not start: $(tail -n3 "$D/gateway.log")"
for ((i = 0; i < 100; i++)); do
  curl -fsS "http://$ADMIN/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$ADMIN/readyz" >/dev/null || die "gateway not ready: $(curl -sS "http://$ADMIN/readyz")"
status
[[ $(serial_of sign) == "$OLD_SIGN" ]] || die "unexpected SIGN serial at start"
echo "soak: simulator admin $SIM_ADMIN, gateway $GATEWAY, admin $ADMIN, gateway pid $GW_PID"

# The probe: one IDB call to AMC 99999993; prints "HTTP-status fault-code".
cat >"$D/probe.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body><idb:identificationDroits xmlns:idb="urn:rocgw:sandbox:idb"><idb:numeroAmc>99999993</idb:numeroAmc><idb:beneficiaire><idb:nir>2990199999999</idb:nir></idb:beneficiaire></idb:identificationDroits></soap:Body></soap:Envelope>
EOF
probe() {
  local code err
  code=$(curl -sS -o /dev/null -D "$D/probe.headers" -w '%{http_code}' \
    -H 'Content-Type: application/soap+xml; charset=utf-8' --data-binary "@$D/probe.xml" \
    "http://$GATEWAY/amc/99999993/idb") || code=000
  err=$(awk -F': *' 'tolower($1) == "x-rocgw-error" { gsub(/\r/, "", $2); print $2 }' "$D/probe.headers")
  echo "$code${err:+ $err}"
}

# --- 2. load, sampling, rotation, CRL update -------------------------------------------------
echo "t_s,gateway_rss_kib,sim_rss_kib" >"$D/rss.csv"
sample() {
  local t=$1 r
  r=$(kib "$GW_PID")
  echo "$t,$r,$(kib "$SIM_PID")" >>"$D/rss.csv"
  RSS_LAST=$r
  ((r > RSS_MAX)) && RSS_MAX=$r
  if [[ -z $RSS_WARM ]] && ((t >= WARMUP)); then
    RSS_WARM=$r RSS_WARM_T=$t CPU_WARM=$(cpu_ticks "$GW_PID")
  fi
  return 0
}

AUDIT_T=
rotate_audit() {
  log "audit rotation: audit.jsonl → audit.jsonl.1 (mv), then SIGUSR1"
  mv "$D/audit.jsonl" "$D/audit.jsonl.1" || { fail "audit rotation: cannot move audit.jsonl"; return 0; }
  kill -USR1 "$GW_PID" || { fail "audit rotation: cannot signal the gateway"; return 0; }
  for ((i = 0; i < 50; i++)); do
    if [[ -s $D/audit.jsonl ]]; then
      AUDIT_T=$(elapsed)
      log "audit rotation: records go to a new audit.jsonl"
      grep -q 'SIGUSR1: the audit file is looked at again' "$D/gateway.log" ||
        fail "audit rotation: the gateway did not log the SIGUSR1"
      return 0
    fi
    sleep 0.1
  done
  fail "audit rotation: no new audit.jsonl 5 s after SIGUSR1"
}

ROTATED_T= ROTATED_EPOCH= ROTATION_OK=0 ANN_CALLS_AT_ROTATION=
rotate() {
  log "rotation: org/ → org/*-renewed identities (atomic mv), then SIGHUP"
  metrics "$D/metrics.rotation.txt"
  ANN_CALLS_AT_ROTATION=$(prom_sum "$D/metrics.rotation.txt" rocgw_annuaire_calls_total)
  install_atomic "$PKI/org/auth_cli-renewed.p12" "$D/certs/auth_cli.p12"
  install_atomic "$PKI/org/sign-renewed.p12" "$D/certs/sign.p12"
  kill -HUP "$GW_PID"
  for ((i = 0; i < 100; i++)); do
    status
    if [[ $(serial_of sign) == "$NEW_SIGN" && $(serial_of auth_cli) == "$NEW_AUTH" ]]; then
      ROTATED_T=$(elapsed) ROTATION_OK=1 ROTATED_EPOCH=$(date +%s)
      log "rotation in force: /status shows SIGN $NEW_SIGN, AUTH_CLI $NEW_AUTH"
      return 0
    fi
    sleep 0.1
  done
  fail "rotation: /status still shows SIGN $(serial_of sign) 10 s after SIGHUP"
}

CRL_T= CRL_OK=0 PROBE_BEFORE= PROBE_AFTER=
crl_update() {
  PROBE_BEFORE=$(probe)
  log "probe before the CRL update: $PROBE_BEFORE (expected 200: no AC-SERVEUR CRL yet, soft policy)"
  local file_changes
  file_changes=$(grep -c 'credentials reloaded trigger="file change" outcome="ok"' "$D/gateway.log" || true)
  log "CRL update: the bundle gains AC-SERVEUR's CRL (atomic mv, no signal: timed check)"
  cat "$PKI/osi/root.crl.pem" "$PKI/osi/ac-services-applicatifs.crl.pem" \
    "$PKI/osi/ac-serveur.crl.pem" >"$D/trust/osi.crls.pem.new"
  mv -f "$D/trust/osi.crls.pem.new" "$D/trust/osi.crls.pem"
  for ((i = 0; i < (3 * CHECK_INTERVAL + 5) * 5; i++)); do
    status
    if [[ $(pyjson "$D/status.json" "sum(1 for c in d['crls'] if c['sphere'] == 'amc' and 'AC-SERVEUR' in c['issuer'])") == 1 ]]; then
      CRL_T=$(elapsed)
      # Handshakes between the file swap and this point still had no AC-SERVEUR CRL: count
      # from here.
      metrics "$D/metrics.crl-in-force.txt"
      log "CRL update in force: /status lists AC-SERVEUR's CRL ($(pyjson "$D/status.json" "[c['entries'] for c in d['crls'] if c['sphere'] == 'amc' and 'AC-SERVEUR' in c['issuer']][0]") entry)"
      break
    fi
    sleep 0.2
  done
  if [[ -z $CRL_T ]]; then
    fail "CRL update: not in /status $((3 * CHECK_INTERVAL + 5)) s after the file changed"
    return 0
  fi
  CRL_OK=1
  if (($(grep -c 'credentials reloaded trigger="file change" outcome="ok"' "$D/gateway.log" || true) <= file_changes)); then
    fail "CRL update: no 'file change' reload in the gateway log"
    CRL_OK=0
  fi
  PROBE_AFTER=$(probe)
  log "probe after the CRL update: $PROBE_AFTER (expected the upstream-cert-revoked fault)"
  if [[ $PROBE_BEFORE != 200 ]]; then
    fail "probe before the CRL update: $PROBE_BEFORE, expected 200"
    CRL_OK=0
  fi
  if [[ $PROBE_AFTER != *" upstream-cert-revoked" ]]; then
    fail "probe after the CRL update: $PROBE_AFTER, expected upstream-cert-revoked"
    CRL_OK=0
  fi
  return 0
}

RSS_WARM= RSS_WARM_T= RSS_MAX=0 RSS_LAST= CPU_WARM=
T0=$(date +%s)
STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
"$ROCGW" load --target "$GATEWAY" --rate "$RATE" --duration "${S}s" --warmup "${LOAD_WARMUP}s" \
  --json "$D/load.json" --html "$D/load.html" >"$D/load.out" 2>"$D/load.log" &
LOAD_PID=$!
log "load started: rate $RATE req/s, ${S} s measured after ${LOAD_WARMUP} s; rotation at ~${ROTATE_AT} s, audit rotation at ~${AUDIT_AT} s, CRL update at ~${CRL_AT} s, RSS baseline at ${WARMUP} s"
NEXT_SAMPLE=0 DID_ROTATE=0 DID_AUDIT=0 DID_CRL=0
while alive "$LOAD_PID"; do
  alive "$GW_PID" || { fail "the gateway died during the run (see $D/gateway.log)"; break; }
  t=$(elapsed)
  if ((t >= NEXT_SAMPLE)); then
    sample "$t"
    NEXT_SAMPLE=$((NEXT_SAMPLE + SAMPLE))
  fi
  if ((DID_ROTATE == 0 && t >= ROTATE_AT)); then
    DID_ROTATE=1
    rotate
  fi
  if ((DID_AUDIT == 0 && t >= AUDIT_AT)); then
    DID_AUDIT=1
    rotate_audit
  fi
  if ((DID_CRL == 0 && t >= CRL_AT)); then
    DID_CRL=1
    crl_update
  fi
  sleep 1
done
LOAD_RC=0
wait "$LOAD_PID" || LOAD_RC=$?
alive "$GW_PID" || die "the gateway is gone (see $D/gateway.log)"
END_T=$(elapsed)
sample "$END_T"
CPU_END=$(cpu_ticks "$GW_PID")
metrics "$D/metrics.end.txt"
sim_metrics "$D/sim-metrics.end.txt"

# --- 3. checks -------------------------------------------------------------------------------
[[ -s $D/load.json ]] || die "no load report (load exit $LOAD_RC): $(tail -n3 "$D/load.log")"
((LOAD_RC == 0)) || fail "rocgw load exited with $LOAD_RC"
L() { pyjson "$D/load.json" "$1"; }
REQS=$(L "d['requests']") OK=$(L "d['ok']") ERRS=$(L "d['errors']")
WREQS=$(L "d['warmup_requests']") WOK=$(L "d['warmup_ok']")
RPS=$(L "'%.1f' % d['throughput_rps']") P50=$(L "d['latency_ms']['p50']") P99=$(L "d['latency_ms']['p99']")
P999=$(L "d['latency_ms']['p999']") PMAX=$(L "d['latency_ms']['max']") CONNS=$(L "d['connections_opened']")
((ERRS == 0)) || fail "load: $ERRS failed requests: $(L "d['errors_by_kind']")"
((WOK == WREQS)) || fail "load warm-up: $((WREQS - WOK)) failed requests"
((REQS > 0)) || fail "load: no request measured"

# The simulator saw every call valid: no refusal (bad signature, untrusted signer, replay...).
SIM_ACCEPTED=$(awk '/^rocgw_sim_requests_total\{/ && /outcome="accepted"/ { s += $2 } END { print s + 0 }' "$D/sim-metrics.end.txt")
SIM_OTHER=$(awk '/^rocgw_sim_requests_total\{/ && !/outcome="accepted"/ { s += $2 } END { print s + 0 }' "$D/sim-metrics.end.txt")
((SIM_OTHER == 0)) || fail "simulator: $SIM_OTHER requests refused or failed: $(grep '^rocgw_sim_requests_total' "$D/sim-metrics.end.txt" | grep -v accepted)"

# The gateway: reloads, faults (only the revoked probe), annuaire calls after the rotation.
M=$D/metrics.end.txt
RELOAD_OK=$(prom "$M" 'rocgw_reloads_total{outcome="ok"}')
RELOAD_FAILED=$(prom "$M" 'rocgw_reloads_total{outcome="failed"}')
((RELOAD_FAILED == 0)) || fail "$RELOAD_FAILED failed reload(s)"
((RELOAD_OK >= 2)) || fail "only $RELOAD_OK successful reload(s), expected at least 2"
FAULTS=$(prom_sum "$M" rocgw_faults_total)
FAULTS_REVOKED=$(prom "$M" 'rocgw_faults_total{code="upstream-cert-revoked"}')
((FAULTS == FAULTS_REVOKED && FAULTS_REVOKED == 1)) ||
  fail "gateway faults: expected only the revoked probe, got: $(grep '^rocgw_faults_total' "$M" | tr '\n' ' ')"
ANN_CALLS=$(prom_sum "$M" rocgw_annuaire_calls_total)
ANN_FOUND=$(prom "$M" 'rocgw_annuaire_calls_total{outcome="found"}')
((ANN_CALLS == ANN_FOUND)) || fail "annuaire calls not all found: $(grep '^rocgw_annuaire_calls_total' "$M" | tr '\n' ' ')"
ANN_AFTER=$((ANN_CALLS - ${ANN_CALLS_AT_ROTATION:-0}))
((ANN_AFTER > 0)) || fail "no annuaire call after the rotation (AUTH_CLI not exercised)"
UNKNOWN_BEFORE=$(prom "$D/metrics.crl-in-force.txt" 'rocgw_revocation_unknown_total{reason="no-crl",upstream="amc"}')
UNKNOWN_END=$(prom "$M" 'rocgw_revocation_unknown_total{reason="no-crl",upstream="amc"}')
AMC_CONNS_AFTER_CRL=$(($(prom "$M" 'rocgw_upstream_connections_opened_total{upstream="amc"}') -
  $(prom "$D/metrics.crl-in-force.txt" 'rocgw_upstream_connections_opened_total{upstream="amc"}')))
((AMC_CONNS_AFTER_CRL > 0)) || fail "no AMC connection opened after the CRL update (new CRL not exercised)"
((UNKNOWN_END == UNKNOWN_BEFORE)) || fail "AMC handshakes still without a CRL after the update ($UNKNOWN_BEFORE → $UNKNOWN_END)"
((ROTATION_OK == 1)) || fail "the rotation was not confirmed"
((CRL_OK == 1)) || fail "the CRL update was not confirmed"

# The audit log: which SIGN serial signed each call, and when the switch happened.
read -r AUD_OLD AUD_NEW AUD_OTHER AUD_BAD AUD_LAST_OLD AUD_FIRST_NEW AUD_OK AUD_IN1 AUD_IN2 < <(python3 - "$OLD_SIGN" "$NEW_SIGN" "$D/audit.jsonl.1" "$D/audit.jsonl" <<'PY'
import json, os, sys
old = new = other = bad = ok = 0
last_old = first_new = "-"
per_file = []
for path in sys.argv[3:]:
    n = 0
    for line in open(path) if os.path.exists(path) else []:
        n += 1
        r = json.loads(line)
        s = r["signer_serial"]
        if s == sys.argv[1]:
            old += 1
            last_old = max(last_old, r["time"]) if last_old != "-" else r["time"]
        elif s == sys.argv[2]:
            new += 1
            first_new = min(first_new, r["time"]) if first_new != "-" else r["time"]
        else:
            other += 1
        if r["outcome"] == "ok":
            ok += 1
        elif r["amc"] != "99999993":
            bad += 1
    per_file.append(n)
print(old, new, other, bad, last_old, first_new, ok, *per_file)
PY
) || true
if [[ -z $AUD_IN2 ]]; then
  fail "audit: the audit files could not be read (no audit check made)"
else
  ((AUD_IN1 > 0 && AUD_IN2 > 0)) || fail "audit rotation: $AUD_IN1 records in audit.jsonl.1, $AUD_IN2 in the new audit.jsonl"
  ((AUD_OK == SIM_ACCEPTED)) || fail "audit: $AUD_OK ok records in the two files, the simulator accepted $SIM_ACCEPTED calls"
  ((AUD_OTHER == 0)) || fail "audit: $AUD_OTHER calls signed by an unexpected serial"
  ((AUD_BAD == 0)) || fail "audit: $AUD_BAD calls not ok"
  ((AUD_OLD > 0 && AUD_NEW > 0)) || fail "audit: calls with the old SIGN $AUD_OLD, with the new $AUD_NEW"
  # No call signed with the old key once the new one was in force (1 s of in-flight tolerance).
  if [[ -n $ROTATED_EPOCH ]]; then
    LIMIT_TIME=$(date -u -d "@$((ROTATED_EPOCH + 1))" +%Y-%m-%dT%H:%M:%S)
    [[ $AUD_LAST_OLD < "$LIMIT_TIME" ]] ||
      fail "audit: a call was signed with the old SIGN at $AUD_LAST_OLD, after the rotation was in force ($LIMIT_TIME)"
  fi
fi

# Memory: end versus after warm-up; both bounds must hold.
GROWTH=$((RSS_LAST - RSS_WARM))
LIMIT_PCT=$((RSS_WARM * MAX_PCT / 100))
LIMIT_MIB=$((MAX_MIB * 1024))
((GROWTH < LIMIT_PCT && GROWTH < LIMIT_MIB)) ||
  fail "RSS grew by $(mib $GROWTH) MiB (after warm-up $(mib "$RSS_WARM") → end $(mib "$RSS_LAST") MiB): bound ${MAX_PCT} % / ${MAX_MIB} MiB"

# The gateway's log: no error (the revoked probe is a warning).
LOG_ERRORS=$(grep -c ' ERROR ' "$D/gateway.log" || true)
LOG_WARNS=$(grep -c ' WARN ' "$D/gateway.log" || true)
((LOG_ERRORS == 0)) || fail "$LOG_ERRORS ERROR line(s) in $D/gateway.log"

# Clean stop: SIGTERM, drain, exit 0.
kill -TERM "$GW_PID"
STOP_RC=0
wait "$GW_PID" || STOP_RC=$?
((STOP_RC == 0)) || fail "the gateway exited with $STOP_RC after SIGTERM"
GW_PID=

# --- 4. summary ------------------------------------------------------------------------------
TCK=$(getconf CLK_TCK)
CPU_PCT=$(awk -v a="$CPU_WARM" -v b="$CPU_END" -v t="$((END_T - RSS_WARM_T))" -v h="$TCK" 'BEGIN { printf "%.0f", (b - a) / h / t * 100 }')
RSS_SERIES=$(awk -F, 'NR > 1 { printf "%s%s", sep, $1 "s:" sprintf("%.1f", $2 / 1024); sep = " " }' "$D/rss.csv")
{
  echo
  echo "rocgw soak — $STARTED_AT — $(nproc) cores — ${S} s at ${RATE} req/s (open loop) — work folder $D"
  printf '%-28s %s\n' \
    "requests (measured)" "$REQS (ok $OK, errors $ERRS); warm-up $WREQS (ok $WOK)" \
    "throughput" "$RPS req/s; $CONNS connection(s) opened by the load" \
    "latency" "p50 $P50 ms  p99 $P99 ms  p99.9 $P999 ms  max $PMAX ms" \
    "simulator" "$SIM_ACCEPTED calls accepted, $SIM_OTHER refused or failed" \
    "gateway faults" "$FAULTS (the revoked probe: $FAULTS_REVOKED)" \
    "reloads" "ok $RELOAD_OK, failed $RELOAD_FAILED" \
    "gateway log" "$LOG_ERRORS ERROR, $LOG_WARNS WARN line(s)" \
    "rotation (SIGHUP)" "at ${ROTATED_T:-?} s: SIGN $OLD_SIGN → $NEW_SIGN in /status; audit: $AUD_OLD calls old (last $AUD_LAST_OLD), $AUD_NEW new (first $AUD_FIRST_NEW); $ANN_AFTER annuaire calls after it, all found" \
    "audit rotation (SIGUSR1)" "at ${AUDIT_T:-?} s: $AUD_IN1 records in audit.jsonl.1, $AUD_IN2 in the new audit.jsonl; $AUD_OK ok records for $SIM_ACCEPTED calls the simulator accepted" \
    "CRL update (file check)" "in force at ${CRL_T:-?} s: AC-SERVEUR CRL in /status; probe AMC 99999993 before: ${PROBE_BEFORE:-?}, after: ${PROBE_AFTER:-?}; $AMC_CONNS_AFTER_CRL AMC connections opened after it; AMC handshakes without a CRL: $UNKNOWN_BEFORE before, $UNKNOWN_END at end" \
    "gateway RSS" "after warm-up ($RSS_WARM_T s) $(mib "$RSS_WARM") MiB, max sampled $(mib "$RSS_MAX") MiB, end $(mib "$RSS_LAST") MiB; growth $(mib $GROWTH) MiB (bound ${MAX_PCT} % = $(mib $LIMIT_PCT) MiB and ${MAX_MIB} MiB)" \
    "gateway CPU" "${CPU_PCT} % of one core (after warm-up)" \
    "RSS samples (MiB)" "$RSS_SERIES" \
    "stop (SIGTERM)" "exit $STOP_RC"
  if ((${#FAILURES[@]} == 0)); then
    echo "RESULT: PASS"
  else
    echo "RESULT: FAIL (${#FAILURES[@]})"
    printf '  - %s\n' "${FAILURES[@]}"
  fi
} | tee "$D/summary.txt"
((${#FAILURES[@]} == 0))
