#!/usr/bin/env bash
# bench/compare-nginx.sh — rocgw side by side with nginx doing the same job (issue 18; NOT run in
# CI; see bench/README.md, "Side by side with nginx (issue 18)").
#
# On one machine, private loopback ports, pinned CPUs: the proxy under test on CPU $PROXY_CPU, the
# upstream nginx, the simulator and the load generator (wrk, -t1) on CPU $LOAD_CPU. Both proxies
# forward over mutual TLS (client certificate = the test PKI's AUTH_CLI; server = the test PKI's
# AC-SERVEUR-issued `amc-a`, for localhost; CRLs of AC-SERVEUR and the root loaded; keep-alive
# upstream). Every request is the same 300-byte SOAP 1.2 POST. Sections, each ROUNDS rounds of
# DURATION, alternating what is compared:
#   1. `/annuaire` pass-through: rocgw against nginx (`proxy_ssl_certificate`): req/s, p50/p99,
#      each proxy's CPU per 1,000 requests (utime + stime from /proc/PID/stat), CPU $LOAD_CPU's idle
#      share during the round (/proc/stat), ratios.
#   2. `/amc/{n}/idb`, the signed path (a fresh RSA-2048 assertion per request, reuse_s = 0): to the
#      static nginx upstream (`response_signature = "off"`), and to `rocgw sim` (which signs its
#      answers) with "off" and with "required"; beside `openssl speed rsa2048` signatures/s on the
#      proxy's core.
#   3. Overload, closed loop, on each path: max_concurrent_requests = 64 at CONNECTIONS and at 6 × 32
#      connections, and the default 512 at CONNECTIONS and 48 × 32 (max_connections = 2048, ulimit -n
#      raised); one rocgw process per limit and path; answers counted by status and X-Rocgw-Error (a
#      wrk Lua `response` hook); goodput = served (200) req/s at the high count ÷ at CONNECTIONS.
#      For reference, the nginx proxy on `/annuaire` at CONNECTIONS and 48 × 32 (no admission
#      limit: its own goodput, what 1,536 open connections cost a proxy on this machine).
#   4. Memory: a fresh rocgw's VmRSS idle, then VmHWM after MEM_CONNECTIONS busy connections on each
#      path (max_concurrent_requests and max_concurrent_per_amc = 1024, so all are admitted), then
#      IDLE_WAIT seconds idle (upstream connections opened meanwhile); nginx's worker for reference.
#   5. `rocgw load` against `wrk` as generators (same core, same POST, same targets): req/s and the
#      generator's CPU per 1,000 requests.
# Every round also counts the connections the upstream nginx accepted (its stub_status): what the
# proxy under test opened. Prints the rounds as they go, each rocgw process's peak RSS and upstream
# connections before it stops, then one Markdown table of medians and ratios. Each process gets one
# second of unmeasured load first (section 4's excepted).
#
# Usage (from the repository root; the binary is taken, never built):
#   ROCGW=/work/main/target/release/rocgw bash bench/compare-nginx.sh
# Environment: ROCGW (default target/release/rocgw), ROUNDS=3, DURATION=5s, CONNECTIONS=32,
# PROXY_CPU=0, LOAD_CPU=1, WORK (work folder, default a new temporary one; kept),
# MEM_CONNECTIONS=1000, MEM_DURATION=5s, IDLE_WAIT=25 (seconds), NGINX=nginx, WRK=wrk,
# SECTIONS="1 2 3 4 5" (a subset runs only those). About 8 minutes with the defaults.
# Installs nothing. Needs: nginx (1.22, with the ssl and stub_status modules: Debian's `nginx`), wrk,
# taskset (util-linux), openssl, curl, python3, awk, getconf.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
ROCGW=${ROCGW:-$ROOT/target/release/rocgw}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MEM_CONNECTIONS=${MEM_CONNECTIONS:-1000}
MEM_DURATION=${MEM_DURATION:-5s}
NGINX=${NGINX:-nginx}
WRK=${WRK:-wrk}
SECTIONS=${SECTIONS:-1 2 3 4 5}
OVL_LOW=$CONNECTIONS          # section 3: the closed loop at the usual concurrency...
OVL_HIGH=$((6 * 32))          # ...at 3 × max_concurrent_requests = 64 (192)...
OVL_HUGE=$((48 * 32))         # ...and at 3 × the default 512 (1,536)

die() { echo "compare-nginx: $*" >&2; exit 2; }
need() { # command package
  command -v "$1" >/dev/null 2>&1 || die "missing '$1' (install the package '$2'; this script installs nothing)"
}
need "$NGINX" nginx
need "$WRK" wrk
need taskset util-linux
need openssl openssl
need curl curl
need python3 python3
need awk gawk
need getconf libc-bin
[[ -x $ROCGW ]] || die "$ROCGW is not executable (build it with 'cargo build --release', or set ROCGW=path)"
ncpu=$(getconf _NPROCESSORS_ONLN)
((PROXY_CPU < ncpu && LOAD_CPU < ncpu)) || die "CPUs $PROXY_CPU and $LOAD_CPU do not both exist ($ncpu online)"
((PROXY_CPU != LOAD_CPU)) || die "PROXY_CPU and LOAD_CPU must differ"
ROCGW=$(cd "$(dirname "$ROCGW")" && pwd)/$(basename "$ROCGW")
NGINX=$(command -v "$NGINX")
WRK=$(command -v "$WRK")
HZ=$(getconf CLK_TCK)
W=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/rocgw-vs-nginx.XXXXXX")}
mkdir -p "$W"
W=$(cd "$W" && pwd)
RES=$W/results
: >"$RES"

# ---------------------------------------------------------------------------------------------
# Processes: every one started here is recorded and stopped on exit.
PIDS=()
declare -A ADMIN_OF=() # rocgw pid → its admin address
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() { # pid: stops one process started here and forgets it
  local p=$1 q keep=()
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  for q in "${PIDS[@]}"; do [[ $q == "$p" ]] || keep+=("$q"); done
  PIDS=("${keep[@]}")
}

free_ports() { # n → n free loopback ports, one a line
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))
PY
}

wait_port() { # port: waits until something accepts on 127.0.0.1:port
  local i
  for ((i = 0; i < 100; i++)); do
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

wait_addr() { # what file → ADDR of "<what> listening on scheme://ADDR"
  local i addr
  for ((i = 0; i < 300; i++)); do
    addr=$(sed -n "s|^.*$1 listening on [a-z]*://\([^/]*\).*|\1|p" "$2" | head -n1)
    [[ -n $addr ]] && { echo "$addr"; return 0; }
    sleep 0.1
  done
  return 1
}

cpu_ticks() { # pids… → utime + stime of them all (clock ticks)
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done
  echo "$t"
}
cpu_line() { # → total and idle ticks of the load CPU, then of the proxy CPU (/proc/stat)
  awk -v l="cpu$LOAD_CPU" -v p="cpu$PROXY_CPU" '$1 == l { a = $2+$3+$4+$5+$6+$7+$8+$9 " " $5+$6 }
    $1 == p { b = $2+$3+$4+$5+$6+$7+$8+$9 " " $5+$6 } END { print a, b }' /proc/stat
}
mem_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; } # pid field → KiB
up_accepts() { # connections the upstream nginx accepted so far (this query's own excluded)
  curl -fsS "http://127.0.0.1:$UPSTAT/" | awk 'NR == 3 { print $1 - 1 }'
}
gw_opened() { # admin → upstream connections rocgw opened so far (annuaire + AMCs)
  curl -fsS "http://$1/metrics" | awk '/^rocgw_upstream_connections_opened_total/ { s += $2 } END { print s + 0 }'
}

# ---------------------------------------------------------------------------------------------
# Test PKI, the request, the upstream's answer, the wrk scripts.
PKI=$W/pki
"$ROCGW" pki init --dir "$PKI" >"$W/pki.log" 2>&1 || die "rocgw pki init failed (see $W/pki.log)"
cat "$PKI/osi/ac-serveur.crl.pem" "$PKI/osi/root.crl.pem" >"$W/osi-crls.pem"

# The request: a 300-byte SOAP 1.2 envelope (an IDB-like body), the same for every path.
REQ='<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Header/><soap:Body><r:idb xmlns:r="urn:rocgw:bench"><r:nir>185129912345678</r:nir><r:date>2026-11-30</r:date><r:ref>BENCH-0000000000000000000001</r:ref></r:idb></soap:Body></soap:Envelope>'
printf '%s' "$REQ" >"$W/request.xml"
((${#REQ} == 300)) || die "the request is ${#REQ} bytes, not 300"
# The upstream's fixed answer (SOAP 1.2, 289 bytes).
ANSWER='<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><r:idbResponse xmlns:r="urn:rocgw:bench"><r:resultat><r:code>00</r:code><r:libelle>Droits ouverts</r:libelle></r:resultat></r:idbResponse></env:Body></env:Envelope>'
CT='application/soap+xml; charset=utf-8'

# post.lua: the POST, and a RESULT line from `done` (µs).
cat >"$W/post.lua" <<EOF
wrk.method = "POST"
wrk.body = [[$REQ]]
wrk.headers["Content-Type"] = "$CT"
function done(s, latency, requests)
  io.write(string.format("RESULT requests=%d duration_us=%d non2xx=%d sockerr=%d p50_us=%d p99_us=%d\n",
    s.requests, s.duration, s.errors.status, s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
EOF
# count.lua: the same, plus every answer counted by status and X-Rocgw-Error.
cat >"$W/count.lua" <<EOF
wrk.method = "POST"
wrk.body = [[$REQ]]
wrk.headers["Content-Type"] = "$CT"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body)
  local code = headers["x-rocgw-error"] or headers["X-Rocgw-Error"]
  local k = tostring(status) .. ":" .. (code or "-")
  counts[k] = (counts[k] or 0) + 1
end
function done(s, latency, requests)
  local parts = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do table.insert(parts, k .. "=" .. v) end
  end
  io.write(string.format("RESULT requests=%d duration_us=%d non2xx=%d sockerr=%d p50_us=%d p99_us=%d counts=%s\n",
    s.requests, s.duration, s.errors.status, s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout,
    latency:percentile(50), latency:percentile(99), table.concat(parts, ",")))
end
EOF
# cpu_of.py OUT cmd…: runs cmd, writes the CPU seconds (user + system) it and its children used.
cat >"$W/cpu_of.py" <<'PY'
import resource, subprocess, sys
rc = subprocess.run(sys.argv[2:]).returncode
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(f"{r.ru_utime + r.ru_stime:.3f}\n")
sys.exit(rc)
PY

# ---------------------------------------------------------------------------------------------
# Ports: upstream nginx, proxy nginx, static nginx (section 5), the simulator's AMCs and annuaire.
mapfile -t P < <(free_ports 7)
UP=${P[0]} NGX=${P[1]} STATIC=${P[2]} SIM2=${P[3]} SIM3=${P[4]} SIMANN=${P[5]} UPSTAT=${P[6]}
USER_LINE=
[[ $(id -u) == 0 ]] && USER_LINE="user root;" # workers would otherwise drop to nobody

nginx_common() { # name → the top of an nginx configuration with every path in the work folder
  mkdir -p "$W/$1/tmp"
  cat <<EOF
$USER_LINE
daemon off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid $W/$1/nginx.pid;
error_log $W/$1/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $W/$1/tmp/body;
  proxy_temp_path $W/$1/tmp/proxy;
  fastcgi_temp_path $W/$1/tmp/fastcgi;
  uwsgi_temp_path $W/$1/tmp/uwsgi;
  scgi_temp_path $W/$1/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
EOF
}

# The upstream: an annuaire / AMC over TLS (server amc-a; on /annuaire, client certificates from
# IGC-Santé required and verified), a fixed answer with keep-alive.
{
  nginx_common upstream
  cat <<EOF
  server {
    listen 127.0.0.1:$UP ssl;
    ssl_certificate $PKI/osi/amc-a.chain.pem;
    ssl_certificate_key $PKI/osi/amc-a.key;
    ssl_client_certificate $PKI/igc-sante/chain.pem;
    # AMC calls come without a client certificate ([amc] present_client_cert = false): the
    # certificate is asked for everywhere and required on /annuaire, as an annuaire would.
    ssl_verify_client optional;
    ssl_verify_depth 2;
    location /annuaire {
      if (\$ssl_client_verify != SUCCESS) { return 403; }
      default_type "$CT";
      return 200 '$ANSWER';
    }
    location / {
      default_type "$CT";
      return 200 '$ANSWER';
    }
  }
  # Connections the upstream accepted (stub_status): what each proxy opened in a round.
  server {
    listen 127.0.0.1:$UPSTAT;
    location / { stub_status; }
  }
}
EOF
} >"$W/upstream.conf"

# The nginx proxy under comparison (plain HTTP in, mutual TLS out), and a static answer for
# section 5 on the same process.
{
  nginx_common proxy
  cat <<EOF
  upstream amc_upstream {
    server 127.0.0.1:$UP;
    keepalive 32;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
  }
  server {
    listen 127.0.0.1:$NGX;
    location / {
      proxy_pass https://amc_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_certificate $PKI/org/auth_cli.chain.pem;
      proxy_ssl_certificate_key $PKI/org/auth_cli.key;
      proxy_ssl_trusted_certificate $PKI/osi/anchors.pem;
      proxy_ssl_verify on;
      proxy_ssl_verify_depth 2;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_crl $W/osi-crls.pem;
    }
  }
  server {
    listen 127.0.0.1:$STATIC;
    location / {
      default_type "$CT";
      return 200 '$ANSWER';
    }
  }
}
EOF
} >"$W/proxy.conf"

NGINX_UP_PID= NGINX_PROXY_PID= NGINX_PROXY_WORKERS=
start_nginx() { # name cpu → sets LAST_PID (master)
  "$NGINX" -t -p "$W/$1" -c "$W/$1.conf" >"$W/$1/test.log" 2>&1 || { cat "$W/$1/test.log" >&2; die "nginx refused $W/$1.conf"; }
  taskset -c "$2" "$NGINX" -p "$W/$1" -c "$W/$1.conf" >"$W/$1/out.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}
mkdir -p "$W/upstream" "$W/proxy"
start_nginx upstream "$LOAD_CPU"; NGINX_UP_PID=$LAST_PID
wait_port "$UP" || die "the upstream nginx did not start (see $W/upstream/)"
sleep 0.2
LOAD_PIDS="$NGINX_UP_PID $(pgrep -P "$NGINX_UP_PID" | tr '\n' ' ')" # the load side's servers
start_proxy_nginx() {
  start_nginx proxy "$PROXY_CPU"; NGINX_PROXY_PID=$LAST_PID
  wait_port "$NGX" || die "the nginx proxy did not start (see $W/proxy/)"
  sleep 0.2
  NGINX_PROXY_WORKERS=$(pgrep -P "$NGINX_PROXY_PID" | tr '\n' ' ')
  [[ -n $NGINX_PROXY_WORKERS ]] || die "no nginx proxy worker"
}
start_proxy_nginx

# The simulator: AMCs 99999992 (answers checked "off") and 99999993 ("required"), both signing
# their answers, on the load CPU.
{ sim_head "$PKI" "127.0.0.1:$SIMANN" 'host = "localhost"'
  cat <<EOF
[signing]
cert = "$PKI/osi/amc-sign.pem"
key = "$PKI/osi/amc-sign.key"
[[amc]]
numero = "99999992"
listen = "127.0.0.1:$SIM2"
services = ["idb"]
[[amc]]
numero = "99999993"
listen = "127.0.0.1:$SIM3"
services = ["idb"]
EOF
} >"$W/sim.toml"
SIM_PID=
if [[ " $SECTIONS " == *" 2 "* ]]; then
  : >"$W/sim.out"
  taskset -c "$LOAD_CPU" "$ROCGW" sim --config "$W/sim.toml" --log-level warn >"$W/sim.out" 2>"$W/sim.log" &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  LOAD_PIDS="$LOAD_PIDS $SIM_PID"
  wait_port "$SIM3" || die "the simulator did not start (see $W/sim.log)"
fi

# rocgw configurations: NAME SERVER_LINES AMC_LINES
rocgw_config() {
  local name=$1 extra=$2 amc=$3
  cat >"$W/rocgw-$name.toml" <<EOF
environment = "test"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
$extra
[identity.auth_cli]
p12 = "$PKI/org/auth_cli.p12"
password_file = "$PKI/secrets/p12-password"
[identity.sign]
p12 = "$PKI/org/sign.p12"
password_file = "$PKI/secrets/p12-password"
[trust]
amc_anchors = ["$PKI/osi/anchors.pem"]
crls = ["$PKI/osi/root.crl.pem", "$PKI/osi/ac-serveur.crl.pem", "$PKI/osi/ac-services-applicatifs.crl.pem"]
[log]
level = "warn"
# The audit log on, as in production: one line per signed call (issue 18 forbids turning it off).
[audit]
file = "$W/audit-$name.jsonl"
[reload]
check_interval_s = 0
[annuaire]
url = "https://localhost:$UP/annuaire"
[amc]
endpoint_hosts = ["localhost"]
response_signature = "off"
$amc
[amc.response_signatures]
"99999993" = "required"
[routes."99999991"]
idb = "https://localhost:$UP/amc/idb"
[routes."99999992"]
idb = "https://localhost:$SIM2/amc/99999992/idb"
[routes."99999993"]
idb = "https://localhost:$SIM3/amc/99999993/idb"
EOF
}
rocgw_config main "" ""
rocgw_config ovl64 "max_concurrent_requests = 64" ""
rocgw_config ovl512 $'max_concurrent_requests = 512\nmax_connections = 2048' ""
# Memory: every one of the MEM_CONNECTIONS requests admitted (the per-AMC cap, 128 by default,
# would shed most of them on the signed path).
rocgw_config mem $'max_concurrent_requests = 1024\nmax_connections = 2048' "max_concurrent_per_amc = 1024"

NOFILE_HIGH=8192
hard=$(ulimit -Hn)
[[ $hard != unlimited ]] && ((hard < NOFILE_HIGH)) && NOFILE_HIGH=$hard

start_rocgw() { # config [instance] → sets GW_PID, GW (host:port), GW_ADMIN; ulimit -n raised for it
  local conf=$1 name=${2:-$1} i
  : >"$W/rocgw-$name.out"
  (ulimit -n "$NOFILE_HIGH"; exec taskset -c "$PROXY_CPU" "$ROCGW" serve --config "$W/rocgw-$conf.toml") \
    >"$W/rocgw-$name.out" 2>"$W/rocgw-$name.log" &
  GW_PID=$!
  ADMIN_OF[$GW_PID]=
  PIDS+=("$GW_PID")
  GW_ADMIN=$(wait_addr "rocgw: admin" "$W/rocgw-$name.out") || { cat "$W/rocgw-$name.log" >&2; die "rocgw ($name) did not start"; }
  GW=$(wait_addr "rocgw: gateway" "$W/rocgw-$name.out")
  ADMIN_OF[$GW_PID]=$GW_ADMIN
  for ((i = 0; i < 100; i++)); do curl -fsS "http://$GW_ADMIN/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "rocgw ($name) not ready (see $W/rocgw-$name.log)"
}

check_200() { # label url: one POST must answer 200
  local code
  code=$(curl -sS -o "$W/check.body" -w '%{http_code}' -H "Content-Type: $CT" --data-binary @"$W/request.xml" "$2") || code=000
  [[ $code == 200 ]] || { echo "--- $1 answered HTTP $code:" >&2; head -c 2000 "$W/check.body" >&2; echo >&2; die "$1 ($2) does not answer 200"; }
}

# ---------------------------------------------------------------------------------------------
# One wrk run, the proxy's CPU and the load CPU's idle share around it. Appends to $RES:
#   section label round req_s p50_ms p99_ms cpu_ms_per_1000 load_idle_pct non2xx sockerr counts
# args: section label round url connections script pids…
wrk_run() {
  local sec=$1 label=$2 round=$3 url=$4 conns=$5 script=$6; shift 6
  local t0 t1 s0 s1 a0 a1 l0 l1 g0=0 g1=-1 out line admin=${ADMIN_OF[$1]:-}
  out=$W/wrk-$sec-$label-$round
  # shellcheck disable=SC2086 # pid lists are words
  l0=$(cpu_ticks $LOAD_PIDS)
  a0=$(up_accepts); [[ -n $admin ]] && g0=$(gw_opened "$admin")
  t0=$(cpu_ticks "$@"); s0=$(cpu_line)
  (ulimit -n "$NOFILE_HIGH"; exec taskset -c "$LOAD_CPU" python3 "$W/cpu_of.py" "$out.cpu" \
    "$WRK" -t1 -c"$conns" -d"$DURATION_RUN" --latency -s "$script" "$url") >"$out.out" 2>&1 || true
  t1=$(cpu_ticks "$@"); s1=$(cpu_line)
  a1=$(up_accepts); [[ -n $admin ]] && g1=$(gw_opened "$admin")
  # shellcheck disable=SC2086
  l1=$(cpu_ticks $LOAD_PIDS)
  ((COUNT_UPSTREAM)) || { a0=0; a1=-1; } # the simulator's connections are not counted: "-1"
  line=$(grep '^RESULT ' "$out.out" || true)
  [[ -n $line ]] || { cat "$out.out" >&2; die "wrk gave no result ($label)"; }
  python3 - "$line" "$((t1 - t0))" "$HZ" "$s0" "$s1" "$sec" "$label" "$round" "$((a1 - a0))" \
    "$((l1 - l0))" "$(cat "$out.cpu")" "$((g1 - g0))" <<'PY' | tee -a "$RES" | fmt_round
import sys
kv = dict(p.split("=", 1) for p in sys.argv[1].split()[1:])
ticks, hz = int(sys.argv[2]), int(sys.argv[3])
tot0, idle0, ptot0, pidle0 = map(int, sys.argv[4].split()); tot1, idle1, ptot1, pidle1 = map(int, sys.argv[5].split())
load_ticks, wrk_s = int(sys.argv[10]), float(sys.argv[11])
req, dur = int(kv["requests"]), int(kv["duration_us"]) / 1e6
cpu = 1e6 * ticks / hz / max(req, 1)  # ms per 1,000 requests
idle = 100.0 * (idle1 - idle0) / max(tot1 - tot0, 1)
# What other processes (the machine is shared) took of each core: busy minus ours.
others = max(0.0, 100.0 * ((ptot1 - ptot0) - (pidle1 - pidle0) - ticks) / max(ptot1 - ptot0, 1))
lothers = max(0.0, 100.0 * ((tot1 - tot0) - (idle1 - idle0) - load_ticks - wrk_s * hz) / max(tot1 - tot0, 1))
na = lambda v: v if v != "-1" else "-"
# 0 sec 1 label 2 round 3 req/s 4 p50 5 p99 6 proxy CPU ms/1000 7 load idle % 8 non-2xx 9 socket errors
# 10 counts 11 upstream accepted 12 others on the proxy CPU % 13 others on the load CPU %
# 14 upstream connections rocgw opened 15 wrk CPU ms/1000 16 the proxy's share of its CPU %
own = 100.0 * ticks / max(ptot1 - ptot0, 1)
print(sys.argv[6], sys.argv[7], sys.argv[8], f"{req / dur:.1f}", f"{int(kv['p50_us']) / 1000:.3f}",
      f"{int(kv['p99_us']) / 1000:.3f}", f"{cpu:.2f}", f"{idle:.1f}", kv["non2xx"], kv["sockerr"],
      kv.get("counts", "-") or "-", na(sys.argv[9]), f"{others:.1f}", f"{lothers:.1f}", na(sys.argv[12]),
      f"{1e6 * wrk_s / max(req, 1):.2f}", f"{own:.1f}")
PY
}
fmt_round() {
  awk '{ printf "  %-2s %-22s round %s: %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  CPU %7.1f ms/1000  load idle %5.1f %%  non-2xx %s  sock errors %s  upstream conns accepted %s, opened by rocgw %s  others on CPU '"$PROXY_CPU"' %s %%, on CPU '"$LOAD_CPU"' %s %%  %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, $15, $13, $14, ($11 == "-" ? "" : $11) }'
}
DURATION_RUN=$DURATION
COUNT_UPSTREAM=1
warm() { # url: one second of the same load, not measured (first connections, handshakes)
  (ulimit -n "$NOFILE_HIGH"; exec taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$CONNECTIONS" -d1s -s "$W/post.lua" "$1") >/dev/null 2>&1 || true
}
IDLE_WAIT=${IDLE_WAIT:-25} # section 4: seconds idle after the load (> [upstream] pool_idle_timeout_ms)

instance_report() { # name pid admin: a rocgw process's memory and upstream connections, before it stops
  echo "9 inst-$1 1 $(mem_kib "$2" VmHWM) $(mem_kib "$2" VmRSS) $(gw_opened "$3") 0 0 0 0 - -" | tee -a "$RES" |
    awk '{ printf "  rocgw (%s): VmHWM %d KiB, VmRSS %d KiB, upstream connections opened since start %d\n", substr($2, 6), $4, $5, $6 }'
}

echo "rocgw: $ROCGW ($("$ROCGW" --version 2>/dev/null || echo '?'))"
echo "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), wrk: $("$WRK" -v 2>&1 | head -n1 | awk '{ print $2 }'), $(openssl version)"
echo "proxy CPU $PROXY_CPU; upstream nginx, simulator, wrk on CPU $LOAD_CPU; $ROUNDS rounds of $DURATION, wrk -t1 -c$CONNECTIONS; work folder $W"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"

start_rocgw main
MAIN_PID=$GW_PID MAIN=$GW MAIN_ADMIN=$GW_ADMIN MAIN_LABEL=main
check_200 "rocgw /annuaire" "http://$MAIN/annuaire"
check_200 "nginx /annuaire" "http://127.0.0.1:$NGX/annuaire"
check_200 "rocgw /amc/99999991/idb" "http://$MAIN/amc/99999991/idb"
if [[ -n $SIM_PID ]]; then
  check_200 "rocgw → sim (off)" "http://$MAIN/amc/99999992/idb"
  check_200 "rocgw → sim (required)" "http://$MAIN/amc/99999993/idb"
fi
for url in "http://$MAIN/annuaire" "http://127.0.0.1:$NGX/annuaire" "http://$MAIN/amc/99999991/idb"; do warm "$url"; done

# 1. /annuaire pass-through ------------------------------------------------------------------
if [[ " $SECTIONS " == *" 1 "* ]]; then
  echo "1. /annuaire pass-through, mutual TLS to the upstream nginx"
  for ((r = 1; r <= ROUNDS; r++)); do
    # shellcheck disable=SC2086 # the worker list is words
    if ((r % 2)); then
      wrk_run 1 rocgw "$r" "http://$MAIN/annuaire" "$CONNECTIONS" "$W/post.lua" "$MAIN_PID"
      wrk_run 1 nginx "$r" "http://127.0.0.1:$NGX/annuaire" "$CONNECTIONS" "$W/post.lua" "$NGINX_PROXY_PID" $NGINX_PROXY_WORKERS
    else
      wrk_run 1 nginx "$r" "http://127.0.0.1:$NGX/annuaire" "$CONNECTIONS" "$W/post.lua" "$NGINX_PROXY_PID" $NGINX_PROXY_WORKERS
      wrk_run 1 rocgw "$r" "http://$MAIN/annuaire" "$CONNECTIONS" "$W/post.lua" "$MAIN_PID"
    fi
  done
fi

# 2. Signed path --------------------------------------------------------------------------------
if [[ " $SECTIONS " == *" 2 "* ]]; then
  echo "2. /amc/{n}/idb, a fresh RSA-2048 assertion per request; openssl speed rsa2048 on CPU $PROXY_CPU"
  secs=${DURATION%s}
  [[ $secs =~ ^[0-9]+$ ]] || secs=5
  for ((r = 1; r <= ROUNDS; r++)); do
    wrk_run 2 signed-nginx-off "$r" "http://$MAIN/amc/99999991/idb" "$CONNECTIONS" "$W/post.lua" "$MAIN_PID"
    COUNT_UPSTREAM=0
    wrk_run 2 signed-sim-off "$r" "http://$MAIN/amc/99999992/idb" "$CONNECTIONS" "$W/post.lua" "$MAIN_PID"
    wrk_run 2 signed-sim-required "$r" "http://$MAIN/amc/99999993/idb" "$CONNECTIONS" "$W/post.lua" "$MAIN_PID"
    COUNT_UPSTREAM=1
    sign=$(taskset -c "$PROXY_CPU" openssl speed -seconds "$secs" -mr rsa2048 2>/dev/null | awk -F: '$1 == "+F2" { print $4 }')
    [[ -n $sign ]] || die "openssl speed gave no rsa2048 figure"
    echo "2 openssl-sign $r $sign 0 0 0 0 0 0 - -" | tee -a "$RES" | awk '{ printf "  %-2s %-22s round %s: %9.0f signatures/s on CPU '"$PROXY_CPU"'\n", $1, $2, $3, $4 }'
  done
fi

# 3. Overload --------------------------------------------------------------------------------
if [[ " $SECTIONS " == *" 3 "* ]]; then
  echo "3. overload, closed loop: answers by status:X-Rocgw-Error"
  instance_report main "$MAIN_PID" "$MAIN_ADMIN"
  stop_pid "$MAIN_PID"
  # One process per limit and path: one path's overload does not run into the other's.
  declare -A OPID=() OADDR=() OADMIN=()
  for limit in 64 512; do
    for p in annuaire amc; do
      start_rocgw "ovl$limit" "ovl$limit-$p"
      OPID[$limit-$p]=$GW_PID OADDR[$limit-$p]=$GW OADMIN[$limit-$p]=$GW_ADMIN
    done
  done
  for ((r = 1; r <= ROUNDS; r++)); do
    for p in annuaire amc; do
      path=annuaire; [[ $p == amc ]] && path=amc/99999991/idb
      ((r == 1)) && warm "http://${OADDR[64-$p]}/$path" && warm "http://${OADDR[512-$p]}/$path"
      wrk_run 3 "$p-64-c$OVL_LOW" "$r" "http://${OADDR[64-$p]}/$path" "$OVL_LOW" "$W/count.lua" "${OPID[64-$p]}"
      wrk_run 3 "$p-64-c$OVL_HIGH" "$r" "http://${OADDR[64-$p]}/$path" "$OVL_HIGH" "$W/count.lua" "${OPID[64-$p]}"
      wrk_run 3 "$p-512-c$OVL_LOW" "$r" "http://${OADDR[512-$p]}/$path" "$OVL_LOW" "$W/count.lua" "${OPID[512-$p]}"
      wrk_run 3 "$p-512-c$OVL_HUGE" "$r" "http://${OADDR[512-$p]}/$path" "$OVL_HUGE" "$W/count.lua" "${OPID[512-$p]}"
    done
    # shellcheck disable=SC2086 # the worker list is words
    for c in "$OVL_LOW" "$OVL_HUGE"; do
      wrk_run 3 "nginx-annuaire-c$c" "$r" "http://127.0.0.1:$NGX/annuaire" "$c" "$W/count.lua" "$NGINX_PROXY_PID" $NGINX_PROXY_WORKERS
    done
  done
  for k in 64-annuaire 64-amc 512-annuaire 512-amc; do
    instance_report "overload-$k" "${OPID[$k]}" "${OADMIN[$k]}"
    stop_pid "${OPID[$k]}"
  done
  start_rocgw main main-restarted; MAIN_PID=$GW_PID MAIN=$GW MAIN_ADMIN=$GW_ADMIN MAIN_LABEL=main-restarted
  warm "http://$MAIN/annuaire"
fi

# 4. Memory ------------------------------------------------------------------------------------
if [[ " $SECTIONS " == *" 4 "* ]]; then
  echo "4. memory: a fresh process, idle, then $MEM_CONNECTIONS busy connections for $MEM_DURATION, then ${IDLE_WAIT} s idle"
  DURATION_RUN=$MEM_DURATION
  for path in annuaire amc/99999991/idb; do
    p=${path%%/*}
    start_rocgw mem "mem-$p"
    sleep 1
    idle=$(mem_kib "$GW_PID" VmRSS)
    wrk_run 4 "mem-rocgw-$p" 1 "http://$GW/$path" "$MEM_CONNECTIONS" "$W/count.lua" "$GW_PID"
    hwm=$(mem_kib "$GW_PID" VmHWM) rss=$(mem_kib "$GW_PID" VmRSS) opened=$(gw_opened "$GW_ADMIN")
    # Idle past the pool's idle timeout: does rocgw go on opening upstream connections?
    a0=$(up_accepts); sleep "$IDLE_WAIT"; a1=$(up_accepts)
    echo "4 rss-rocgw-$p 1 $idle $hwm $rss $opened $(gw_opened "$GW_ADMIN") $(mem_kib "$GW_PID" VmRSS) $((a1 - a0)) - -" | tee -a "$RES" |
      awk '{ printf "  %-2s %-22s: VmRSS idle %d KiB, VmHWM after %d KiB, VmRSS after %d KiB; upstream connections opened %d, %d after '"$IDLE_WAIT"' s idle (upstream accepted %d while idle), VmRSS then %d KiB\n", $1, $2, $4, $5, $6, $7, $8, $10, $9 }'
    stop_pid "$GW_PID"
  done
  # nginx: a fresh proxy (its worker's memory), the same load on /annuaire.
  stop_pid "$NGINX_PROXY_PID"
  start_proxy_nginx
  sleep 1
  read -r w _ <<<"$NGINX_PROXY_WORKERS"
  idle=$(mem_kib "$w" VmRSS)
  # shellcheck disable=SC2086
  wrk_run 4 mem-nginx-annuaire 1 "http://127.0.0.1:$NGX/annuaire" "$MEM_CONNECTIONS" "$W/count.lua" "$NGINX_PROXY_PID" $NGINX_PROXY_WORKERS
  echo "4 rss-nginx-annuaire 1 $idle $(mem_kib "$w" VmHWM) $(mem_kib "$w" VmRSS) 0 0 0 0 - -" | tee -a "$RES" |
    awk '{ printf "  %-2s %-22s: worker VmRSS idle %d KiB, VmHWM after %d KiB, VmRSS after %d KiB\n", $1, $2, $4, $5, $6 }'
  DURATION_RUN=$DURATION
fi

# 5. Generators ----------------------------------------------------------------------------------
if [[ " $SECTIONS " == *" 5 "* ]]; then
  echo "5. generators on CPU $LOAD_CPU: rocgw load against wrk, same POST, $CONNECTIONS connections"
  # rocgw load sends the same body to one path: a template without placeholders for the service.
  gen_run() { # target label round addr path(annuaire|amc) pids…
    local target=$1 gen=$2 round=$3 addr=$4 path=$5; shift 5
    local t0 t1 s0 s1 out mix tmpl
    out=$W/gen-$target-$gen-$round
    if [[ $path == annuaire ]]; then mix=annuaire/99999991 tmpl=annuaire; else mix=99999991/idb tmpl=idb; fi
    t0=$(cpu_ticks "$@"); s0=$(cpu_line)
    if [[ $gen == wrk ]]; then
      local url=http://$addr/annuaire
      [[ $path == amc ]] && url=http://$addr/amc/99999991/idb
      taskset -c "$LOAD_CPU" python3 "$W/cpu_of.py" "$out.cpu" "$WRK" -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$W/post.lua" "$url" >"$out.out" 2>&1 || true
    else
      taskset -c "$LOAD_CPU" python3 "$W/cpu_of.py" "$out.cpu" "$ROCGW" load --target "$addr" --mix "$mix" \
        --template "$tmpl=$W/request.xml" --concurrency "$CONNECTIONS" --duration "$DURATION" --warmup 0s \
        --quiet --json "$out.json" >"$out.out" 2>&1 || true
    fi
    t1=$(cpu_ticks "$@"); s1=$(cpu_line)
    python3 - "$out" "$gen" "$((t1 - t0))" "$HZ" "$s0" "$s1" "$target" "$round" <<'PY' | tee -a "$RES" | fmt_round
import json, sys
out, gen = sys.argv[1], sys.argv[2]
ticks, hz = int(sys.argv[3]), int(sys.argv[4])
tot0, idle0, ptot0, pidle0 = map(int, sys.argv[5].split()); tot1, idle1, ptot1, pidle1 = map(int, sys.argv[6].split())
gen_cpu = float(open(out + ".cpu").read())
if gen == "wrk":
    line = [l for l in open(out + ".out") if l.startswith("RESULT ")]
    if not line:
        sys.exit("wrk gave no result: " + open(out + ".out").read())
    kv = dict(p.split("=", 1) for p in line[0].split()[1:])
    req, rps = int(kv["requests"]), int(kv["requests"]) / (int(kv["duration_us"]) / 1e6)
    p50, p99, errs = int(kv["p50_us"]) / 1000, int(kv["p99_us"]) / 1000, int(kv["non2xx"]) + int(kv["sockerr"])
else:
    d = json.load(open(out + ".json"))
    req = d["requests"] + d.get("warmup_requests", 0)
    rps, p50, p99, errs = d["throughput_rps"], d["latency_ms"]["p50"], d["latency_ms"]["p99"], d["errors"]
idle = 100.0 * (idle1 - idle0) / max(tot1 - tot0, 1)
others = max(0.0, 100.0 * ((ptot1 - ptot0) - (pidle1 - pidle0) - ticks) / max(ptot1 - ptot0, 1))
# cpu column: the generator's CPU per 1,000 requests; counts column: the target's.
print(f"5 {sys.argv[7]}-{gen} {sys.argv[8]} {rps:.1f} {p50:.3f} {p99:.3f} {1e6 * gen_cpu / max(req, 1):.2f} {idle:.1f} {errs} 0 "
      f"target_cpu_ms_per_1000={1e6 * ticks / hz / max(req, 1):.2f} - {others:.1f} - - -")
PY
  }
  for ((r = 1; r <= ROUNDS; r++)); do
    # shellcheck disable=SC2086
    for gen in wrk rocgw-load; do
      gen_run static "$gen" "$r" "127.0.0.1:$STATIC" annuaire "$NGINX_PROXY_PID" $NGINX_PROXY_WORKERS
      gen_run rocgw-annuaire "$gen" "$r" "$MAIN" annuaire "$MAIN_PID"
    done
  done
fi

instance_report "$MAIN_LABEL" "$MAIN_PID" "$MAIN_ADMIN"

# ---------------------------------------------------------------------------------------------
echo
echo "rocgw logs: $(cat "$W"/rocgw-*.log | grep -c . || true) lines ($(cat "$W"/rocgw-*.log | grep -cE 'WARN|ERROR' || true) WARN/ERROR); nginx error logs: $(cat "$W"/proxy/error.log "$W"/upstream/error.log 2>/dev/null | grep -c . || true) lines"
python3 - "$RES" "$PROXY_CPU" "$LOAD_CPU" "$CONNECTIONS" "$OVL_LOW" "$OVL_HIGH" "$OVL_HUGE" "$MEM_CONNECTIONS" "$IDLE_WAIT" <<'PY'
import statistics, sys
from collections import defaultdict
res, pcpu, lcpu, conns, low, high, huge, memc, idle_wait = sys.argv[1:10]
rows = defaultdict(list)
for line in open(res):
    f = line.split()
    rows[(f[0], f[1])].append(f)
def vals(k, i):
    return [float(f[i]) for f in rows.get(k, [])]
def med(k, i):
    v = vals(k, i)
    return statistics.median(v) if v else None
def rng(k, i):
    v = vals(k, i)
    return f" ({min(v):,.0f}–{max(v):,.0f})" if len(v) > 1 else ""
def total(k, i):
    return sum(int(f[i]) for f in rows.get(k, []) if f[i].lstrip("-").isdigit())
def n(x, d=0):
    return "–" if x is None else f"{x:,.{d}f}"
def ratio(a, b):
    return "–" if a is None or b in (None, 0) else f"{a / b:.2f}"
def counts(k):
    tot = defaultdict(int)
    for f in rows.get(k, []):
        if f[10] != "-":
            for kv in f[10].split(","):
                key, v = kv.rsplit("=", 1)
                tot[key] += int(v)
    return tot
def served(k):  # median over rounds of the req/s answered 200
    v = []
    for f in rows.get(k, []):
        c = {kv.rsplit("=", 1)[0]: int(kv.rsplit("=", 1)[1]) for kv in f[10].split(",")} if f[10] != "-" else {}
        v.append(float(f[3]) * c.get("200:-", 0) / (sum(c.values()) or 1))
    return statistics.median(v) if v else None
def others(k):
    c = counts(k)
    s = ", ".join(f"{key} {v:,}" for key, v in sorted(c.items(), key=lambda kv: -kv[1]) if key != "200:-")
    return s or "none", 100 * (1 - c.get("200:-", 0) / (sum(c.values()) or 1))
out = []
def row(*cells):
    out.append("| " + " | ".join(cells) + " |")
row("#", "measure", "rocgw", "reference", "ratio rocgw / reference")
row("---", "---", "---:", "---:", "---:")
R, N = ("1", "rocgw"), ("1", "nginx")
if rows.get(R) and rows.get(N):
    row("1", f"`/annuaire` pass-through, req/s (wrk -t1 -c{conns}; median (range) of rounds)", f"{n(med(R, 3))}{rng(R, 3)}", f"nginx {n(med(N, 3))}{rng(N, 3)}", ratio(med(R, 3), med(N, 3)))
    row("1", "p50 / p99 latency (ms)", f"{n(med(R, 4), 2)} / {n(med(R, 5), 2)}", f"nginx {n(med(N, 4), 2)} / {n(med(N, 5), 2)}", f"{ratio(med(R, 4), med(N, 4))} / {ratio(med(R, 5), med(N, 5))}")
    row("1", f"proxy CPU per 1,000 requests (ms; CPU {pcpu})", n(med(R, 6), 1), f"nginx {n(med(N, 6), 1)}", ratio(med(R, 6), med(N, 6)))
    row("1", f"CPU {pcpu}: used by the proxy / by other processes (shared machine)",
        f"{n(med(R, 16), 0)} % / {n(med(R, 12), 0)} %", f"nginx {n(med(N, 16), 0)} % / {n(med(N, 12), 0)} %", "")
    row("1", f"CPU {lcpu} (upstream nginx + wrk): idle / used by other processes",
        f"{n(med(R, 7), 1)} % / {n(med(R, 13), 0)} %", f"nginx's rounds {n(med(N, 7), 1)} % / {n(med(N, 13), 0)} %", "")
    row("1", "wrk's CPU per 1,000 requests (ms)", n(med(R, 15), 1), f"nginx's rounds {n(med(N, 15), 1)}", ratio(med(R, 15), med(N, 15)))
    row("1", "upstream connections opened, all rounds (pool: 32; rocgw's count / the upstream's); non-2xx + socket errors",
        f"{total(R, 14):,} / {total(R, 11):,}; {total(R, 8) + total(R, 9):,}", f"nginx {total(N, 11):,}; {total(N, 8) + total(N, 9):,}", "")
S = ("2", "openssl-sign")
if rows.get(S):
    sign = med(S, 3)
    row("2", f"`openssl speed -seconds N rsa2048`, CPU {pcpu}: signatures/s{rng(S, 3)}", "", n(sign), "")
    for label, what in (("signed-nginx-off", "→ static nginx, `response_signature = \"off\"`"),
                        ("signed-sim-off", "→ `rocgw sim` (signs its answers), `\"off\"`"),
                        ("signed-sim-required", "→ `rocgw sim`, `\"required\"` (each answer checked)")):
        k = ("2", label)
        if not rows.get(k):
            continue
        row("2", f"`/amc/…/idb` {what}: req/s; ratio to openssl sign/s", f"{n(med(k, 3))}{rng(k, 3)}", f"openssl {n(sign)} sign/s", ratio(med(k, 3), sign))
        row("2", f"  same: CPU per 1,000 requests (ms); ratio to 1,000 signatures", n(med(k, 6), 1), f"1,000 signatures {n(1e6 / sign, 1)}", ratio(med(k, 6), 1e6 / sign))
        row("2", f"  same: p50 / p99 (ms); CPU {lcpu} idle; others on CPU {pcpu} / {lcpu}; non-2xx + socket errors; upstream connections opened",
            f"{n(med(k, 4), 2)} / {n(med(k, 5), 2)}; {n(med(k, 7), 1)} %; {n(med(k, 12), 0)} % / {n(med(k, 13), 0)} %; {total(k, 8) + total(k, 9):,}; {total(k, 14):,}", "", "")
for p, name in (("annuaire", "`/annuaire`"), ("amc", "`/amc/99999991/idb`")):
    for limit, top, extra in (("64", high, ""), ("512", huge, ", max_connections = 2048")):
        lo, hi = ("3", f"{p}-{limit}-c{low}"), ("3", f"{p}-{limit}-c{top}")
        if not rows.get(lo) or not rows.get(hi):
            continue
        o_hi, share_hi = others(hi)
        o_lo, _ = others(lo)
        row("3", f"{name}, max_concurrent_requests = {limit}{extra}: served (200) req/s at -c{top}, vs -c{low}; goodput",
            f"{n(served(hi))} (p99 {n(med(hi, 5), 1)} ms)", f"{n(served(lo))} at -c{low} (p99 {n(med(lo, 5), 1)} ms)", ratio(served(hi), served(lo)))
        row("3", "  answers other than 200 (status:X-Rocgw-Error, all rounds); upstream connections opened",
            f"-c{top}: {o_hi} ({share_hi:.1f} %); {total(hi, 14):,}", f"-c{low}: {o_lo}; {total(lo, 14):,}", "")
lo, hi = ("3", f"nginx-annuaire-c{low}"), ("3", f"nginx-annuaire-c{huge}")
if rows.get(lo) and rows.get(hi):
    row("3", f"reference: nginx proxying `/annuaire` (no admission limit): served req/s at -c{huge}, vs -c{low}; its own goodput",
        "", f"{n(served(hi))} vs {n(served(lo))}; CPU per 1,000 {n(med(hi, 6), 1)} vs {n(med(lo, 6), 1)} ms", ratio(served(hi), served(lo)))
for p, name in (("annuaire", "`/annuaire`"), ("amc", "`/amc/99999991/idb`")):
    k = ("4", f"rss-rocgw-{p}")
    if rows.get(k):
        f = rows[k][0]
        idle, hwm = int(f[3]), int(f[4])
        m = ("4", f"mem-rocgw-{p}")
        o, _ = others(m)
        row("4", f"rocgw RSS, {name}: idle → peak (VmHWM) with {memc} busy connections; (peak − idle) / {memc}",
            f"{idle / 1024:.1f} → {hwm / 1024:.1f} MiB; {(hwm - idle) / int(memc):.1f} KiB", "", "")
        row("4", f"  same: req/s; non-200; upstream connections opened, then after {idle_wait} s idle; RSS then",
            f"{n(med(m, 3))}; {o}; {int(f[6]):,}, then {int(f[7]):,} (+{int(f[7]) - int(f[6]):,} idle); {int(f[8]) / 1024:.1f} MiB", "", "")
k = ("4", "rss-nginx-annuaire")
if rows.get(k):
    f = rows[k][0]
    idle, hwm = int(f[3]), int(f[4])
    m = ("4", "mem-nginx-annuaire")
    row("4", f"nginx worker RSS, `/annuaire`: idle → peak with {memc} busy connections; per connection; req/s; upstream connections opened", "",
        f"{idle / 1024:.1f} → {hwm / 1024:.1f} MiB; {(hwm - idle) / int(memc):.1f} KiB; {n(med(m, 3))} req/s; {total(m, 11):,}", "")
for t, name in (("static", f"static nginx answer (CPU {pcpu})"), ("rocgw-annuaire", f"rocgw `/annuaire` (CPU {pcpu})")):
    w, l = ("5", f"{t}-wrk"), ("5", f"{t}-rocgw-load")
    if rows.get(w) and rows.get(l):
        row("5", f"generator on CPU {lcpu} → {name}: req/s, `rocgw load` vs wrk", f"{n(med(l, 3))}{rng(l, 3)}", f"wrk {n(med(w, 3))}{rng(w, 3)}", ratio(med(l, 3), med(w, 3)))
        row("5", f"  generator CPU per 1,000 requests (ms); p99 (ms); errors; CPU {lcpu} idle", f"{n(med(l, 6), 1)}; {n(med(l, 5), 2)}; {total(l, 8)}; {n(med(l, 7), 0)} %", f"wrk {n(med(w, 6), 1)}; {n(med(w, 5), 2)}; {total(w, 8)}; {n(med(w, 7), 0)} %", ratio(med(l, 6), med(w, 6)))
for key in [k for k in rows if k[0] == "9"]:
    f = rows[key][0]
    row("–", f"rocgw process `{key[1][5:]}`: VmHWM; VmRSS before it stops; upstream connections opened since start",
        f"{int(f[3]) / 1024:.1f} MiB; {int(f[4]) / 1024:.1f} MiB; {int(f[5]):,}", "", "")
print()
print("\n".join(out))
PY
echo
echo "work folder (configurations, logs, wrk outputs, results): $W"
