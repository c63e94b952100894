#!/usr/bin/env bash
# Data-path benchmarks: a direct connection vs frp-rs (tcpMux on and off, TLS off, one tcp
# proxy, poolCount 1), and rathole / Go frp when their binaries are on PATH (or RATHOLE / FRPS +
# FRPC point at them). Results are appended to bench/RESULTS.md.
#
#   bash bench/run.sh                         # full run: medians of 3 (about 15 minutes)
#   RUNS=1 SECS=3 HOLD=500 bash bench/run.sh  # shorter (HOLD: idle connections held, a list)
#   SETUPS=on,rathole OUT=/dev/null bash bench/run.sh   # some setups, table not recorded
#
# SETUPS (comma-separated): direct, on (frp-rs tcpMux on), off (tcpMux off), tls (tcpMux and
# TLS on: frp's real defaults), quic (transport.protocol = "quic"), ws (websocket), kcp (kcp), go (Go frp, tcpMux on, and with TLS), rathole, vhost (HTTP only:
# an http proxy through frps's vhostHTTPPort, routed by Host, beside the direct backend and Go
# frp's vhost when FRPS/FRPC are given; a table of its own).
#
# Needs iperf3, wrk and python3 (installed with apt-get when missing and running as root).
# As in the performance issue, load generator and backends run on core 0 and the tunnel's
# processes on core 1 (taskset), so the tunnel gets one core.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-5}
HOLD=${HOLD:-1000 5000}
RUNS=${RUNS:-3}
SETUPS=${SETUPS:-direct,on,off,tls,quic,ws,kcp,go,rathole}
OUT=${OUT:-bench/RESULTS.md}
want() { [[ ",$SETUPS," == *",$1,"* ]]; }

for tool in iperf3 wrk python3 taskset; do
  if ! command -v "$tool" >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq iperf3 wrk python3 util-linux >/dev/null
    else echo "missing $tool: install iperf3, wrk, python3 (apt-get install iperf3 wrk python3)" >&2; exit 1; fi
  fi
done
ulimit -n 65536 2>/dev/null || true
# CARGO: how to run cargo (e.g. CARGO="flock /tmp/cargo.lock cargo" on a shared machine).
${CARGO:-cargo} build --release --bin frps --bin frpc --bin bench-backend >&2
BIN=target/release
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

LOAD="taskset -c 0"
TUN="taskset -c 1"
[ "$(nproc)" -ge 2 ] || { LOAD=""; TUN=""; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
cpu_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
rss_kib() { local t=0; for p in "$@"; do t=$((t + $(awk '/VmRSS/{print $2}' "/proc/$p/status"))); done; echo $t; }
# Anonymous (private) RSS: what the processes cost beyond shared executable and library pages.
anon_kib() { local t=0; for p in "$@"; do t=$((t + $(awk '/RssAnon/{print $2}' "/proc/$p/status"))); done; echo $t; }

IPERF_PORT=$(free_port); HTTP_PORT=$(free_port)
$LOAD iperf3 -s -p "$IPERF_PORT" >/dev/null 2>&1 & PIDS+=($!)
$LOAD $BIN/bench-backend "127.0.0.1:$HTTP_PORT" 2>/dev/null & PIDS+=($!)
wait_port "$IPERF_PORT"; wait_port "$HTTP_PORT"

# iperf3 -> "Gbit/s"; args: port extra-args
# A run that finds iperf3's server still busy with the last test (over KCP the last test's
# connections take a moment to close) is tried again, up to 5 times.
iperf() {
  local try out
  for try in 1 2 3 4 5; do
    out=$($LOAD iperf3 -c 127.0.0.1 -p "$1" -t "$SECS" -J ${2:-} | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.2f" % (d["end"]["sum_received"]["bits_per_second"]/1e9))' 2>/dev/null) && { echo "$out"; return; }
    sleep 1
  done
  echo "iperf3 failed 5 times on port $1" >&2; return 1
}
# wrk -> "req/s p50 p99"; args: port extra-args [host]
httpbench() {
  local hdr=()
  [ "${2:-}" = close ] && hdr=(-H "Connection: close")
  [ -n "${3:-}" ] && hdr+=(-H "Host: $3")
  $LOAD wrk -t1 -c50 -d"${SECS}s" --latency "${hdr[@]}" "http://127.0.0.1:$1/" 2>/dev/null | python3 -c '
import sys,re
t=sys.stdin.read()
rps=re.search(r"Requests/sec:\s+([\d.]+)",t).group(1)
def lat(p):
    m=re.search(r"\s"+p+r"%\s+([\d.]+)(us|ms|s)",t)
    v=float(m.group(1)); return v/1000 if m.group(2)=="us" else (v*1000 if m.group(2)=="s" else v)
print("%.0f %.2f %.2f" % (float(rps), lat("50"), lat("99")))'
}
# Fixed-rate latency: RATE req/s spread over 20 keep-alive connections for SECS seconds
# (open loop: each request is sent on schedule); prints p99 in ms. args: port [host]
fixed_p99() {
  $LOAD python3 - "$1" "${RATE:-2000}" "$SECS" "${2:-x}" <<'PY'
import asyncio,sys,time
port,rate,secs=int(sys.argv[1]),int(sys.argv[2]),float(sys.argv[3]); conns=20
req=b"GET / HTTP/1.1\r\nHost: "+sys.argv[4].encode()+b"\r\n\r\n"
lat=[]
async def worker(i):
    r,w=await asyncio.open_connection("127.0.0.1",port)
    per=conns/rate; start=time.perf_counter()+i*(1/rate); k=0
    while True:
        due=start+k*per
        if due-start>secs: break
        d=due-time.perf_counter()
        if d>0: await asyncio.sleep(d)
        w.write(req)
        head=await r.readuntil(b"\r\n\r\n")
        n=int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
        await r.readexactly(n)
        lat.append(time.perf_counter()-due); k+=1
    w.close()
async def main(): await asyncio.gather(*(worker(i) for i in range(conns)))
asyncio.run(main())
lat.sort(); print("%.2f" % (lat[int(len(lat)*0.99)]*1000))
PY
}

# Holds $1 idle connections through port $2 and prints the RSS growth (KiB) per connection of
# pids $3..
hold_rss() {
  local n=$1 port=$2; shift 2
  local before; before=$(rss_kib "$@")
  python3 - "$port" "$n" <<'PY' &
import socket,sys,time
port,n=int(sys.argv[1]),int(sys.argv[2]); conns=[]
for i in range(n):
    s=socket.create_connection(("127.0.0.1",port)); s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"); conns.append(s)
for s in conns: s.recv(2048)
open("/tmp/frp-rs-bench-held","w").write("ok"); time.sleep(30)
PY
  local hp=$!
  for _ in $(seq 1 1200); do [ -f /tmp/frp-rs-bench-held ] && break; sleep 0.05; done
  sleep 0.5
  local after; after=$(rss_kib "$@")
  kill $hp 2>/dev/null || true; wait $hp 2>/dev/null || true; rm -f /tmp/frp-rs-bench-held
  echo $(( (after - before) / n ))
}

# The median of its arguments (the lower middle one for an even count).
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }

ROWS=()
measure() { # label iperf_port http_port pids...
  local label=$1 ip=$2 hp=$3; shift 3
  local c0 c1 g1 idle per r ka cl
  local G1=() G4=() GR=() CPU=() KA=() KA99=() CL=() CL99=() FX=()
  idle=$( [ $# -gt 0 ] && python3 -c "print('%.1f (%.1f)' % ($(rss_kib "$@")/1024, $(anon_kib "$@")/1024))" || echo "-")
  for r in $(seq 1 "$RUNS"); do
    c0=$( [ $# -gt 0 ] && cpu_ticks "$@" || echo 0)
    g1=$(iperf "$ip"); G1+=("$g1")
    c1=$( [ $# -gt 0 ] && cpu_ticks "$@" || echo 0)
    if [ $# -gt 0 ]; then CPU+=("$(python3 -c "print('%.2f' % ((($c1-$c0)/$(getconf CLK_TCK)) / ($g1*$SECS/8)))")"); else CPU+=("-"); fi
    G4+=("$(iperf "$ip" "-P 4")")
    GR+=("$(iperf "$ip" "-R")")
    read -r ka _ r <<<"$(httpbench "$hp")"; KA+=("$ka"); KA99+=("$r")
    read -r cl _ r <<<"$(httpbench "$hp" close)"; CL+=("$cl"); CL99+=("$r")
    FX+=("$(fixed_p99 "$hp")")
  done
  per="-"
  if [ $# -gt 0 ]; then
    per=""
    for n in $HOLD; do per="$per${per:+; }$(hold_rss "$n" "$hp" "$@")"; sleep 1; done
  fi
  ROWS+=("| $label | $(median "${G1[@]}") | $(median "${G4[@]}") | $(median "${GR[@]}") | $(median "${CPU[@]}") | $(median "${KA[@]}") | $(median "${KA99[@]}") | $(median "${CL[@]}") | $(median "${CL99[@]}") | $(median "${FX[@]}") | $per | $idle |")
  echo "done: $label (iperf3 runs: ${G1[*]})" >&2
}

want direct && measure "direct" "$IPERF_PORT" "$HTTP_PORT"

start_frp_rs() { # mux(true|false) [tls(true|false)] [protocol(tcp|quic|websocket|kcp)] -> sets TP_I TP_H and TUNNEL_PIDS
  local mux=$1 tls=${2:-false} proto=${3:-tcp} bind quic kcp dial; bind=$(free_port); TP_I=$(free_port); TP_H=$(free_port)
  quic=0; kcp=0; dial=$bind
  if [ "$proto" = quic ]; then quic=$(free_port); dial=$quic; fi
  if [ "$proto" = kcp ]; then kcp=$bind; fi
  printf 'bindAddr = "127.0.0.1"\nbindPort = %s\nquicBindPort = %s\nkcpBindPort = %s\ntransport.tcpMux = %s\n' "$bind" "$quic" "$kcp" "$mux" > "$WORK/frps.toml"
  printf 'serverAddr = "127.0.0.1"\nserverPort = %s\ntransport.protocol = "%s"\ntransport.tls.enable = '"$tls"'\ntransport.tcpMux = %s\n[[proxies]]\nname = "iperf"\ntype = "tcp"\nlocalPort = %s\nremotePort = %s\n[[proxies]]\nname = "http"\ntype = "tcp"\nlocalPort = %s\nremotePort = %s\n' \
    "$dial" "$proto" "$mux" "$IPERF_PORT" "$TP_I" "$HTTP_PORT" "$TP_H" > "$WORK/frpc.toml"
  $TUN "$FRPS_BIN" -c "$WORK/frps.toml" >"$WORK/frps.log" 2>&1 & local s=$!; wait_port "$bind"
  $TUN "$FRPC_BIN" -c "$WORK/frpc.toml" >"$WORK/frpc.log" 2>&1 & local c=$!
  PIDS+=($s $c); TUNNEL_PIDS="$s $c"; wait_port "$TP_I"; wait_port "$TP_H"
}
stop_tunnel() { for p in $TUNNEL_PIDS; do kill "$p"; wait "$p" 2>/dev/null || true; done; }

FRPS_BIN=$BIN/frps FRPC_BIN=$BIN/frpc
want on  && { start_frp_rs true;  measure "frp-rs, tcpMux on"  "$TP_I" "$TP_H" $TUNNEL_PIDS; stop_tunnel; }
want off && { start_frp_rs false; measure "frp-rs, tcpMux off" "$TP_I" "$TP_H" $TUNNEL_PIDS; stop_tunnel; }
want tls && { start_frp_rs true true; measure "frp-rs, tcpMux on, TLS" "$TP_I" "$TP_H" $TUNNEL_PIDS; stop_tunnel; }
want quic && { start_frp_rs true false quic; measure "frp-rs, QUIC" "$TP_I" "$TP_H" $TUNNEL_PIDS; stop_tunnel; }
want ws && { start_frp_rs true false websocket; measure "frp-rs, WebSocket, tcpMux on" "$TP_I" "$TP_H" $TUNNEL_PIDS; stop_tunnel; }
want kcp && { start_frp_rs true false kcp; measure "frp-rs, KCP, tcpMux on" "$TP_I" "$TP_H" $TUNNEL_PIDS; stop_tunnel; }

if want go && { [ -n "${FRPS:-}" ] && [ -n "${FRPC:-}" ] || { command -v frps-go >/dev/null && command -v frpc-go >/dev/null; }; }; then
  FRPS_BIN=${FRPS:-frps-go} FRPC_BIN=${FRPC:-frpc-go}
  start_frp_rs true; measure "Go frp, tcpMux on" "$TP_I" "$TP_H" $TUNNEL_PIDS; stop_tunnel
  start_frp_rs true true; measure "Go frp, tcpMux on, TLS" "$TP_I" "$TP_H" $TUNNEL_PIDS; stop_tunnel
fi

# HTTP through vhostHTTPPort: keep-alive and new-connection req/s with p99, p99 at a fixed rate.
HROWS=()
VHOST_NAME=bench.test
measure_http() { # label port host pids...
  local label=$1 hp=$2 host=$3; shift 3
  local r ka cl KA=() KA99=() CL=() CL99=() FX=()
  for r in $(seq 1 "$RUNS"); do
    read -r ka _ r <<<"$(httpbench "$hp" "" "$host")"; KA+=("$ka"); KA99+=("$r")
    read -r cl _ r <<<"$(httpbench "$hp" close "$host")"; CL+=("$cl"); CL99+=("$r")
    FX+=("$(fixed_p99 "$hp" "$host")")
  done
  HROWS+=("| $label | $(median "${KA[@]}") | $(median "${KA99[@]}") | $(median "${CL[@]}") | $(median "${CL99[@]}") | $(median "${FX[@]}") |")
  echo "done: $label" >&2
}
# Waits until the vhost at port $1 answers 200 for Host $2 (the proxy is registered).
wait_http() {
  python3 - "$1" "$2" <<'PY' || { echo "vhost on port $1 never served $2" >&2; exit 1; }
import socket,sys,time
port,host=int(sys.argv[1]),sys.argv[2]
for _ in range(200):
    try:
        s=socket.create_connection(("127.0.0.1",port)); s.sendall(b"GET / HTTP/1.1\r\nHost: "+host.encode()+b"\r\nConnection: close\r\n\r\n")
        if s.recv(64).startswith(b"HTTP/1.1 200"): sys.exit(0)
    except OSError: pass
    time.sleep(0.05)
sys.exit(1)
PY
}
start_vhost() { # -> sets TP_H (the vhostHTTPPort) and TUNNEL_PIDS; tcpMux on, TLS off
  local bind; bind=$(free_port); TP_H=$(free_port)
  printf 'bindAddr = "127.0.0.1"\nbindPort = %s\nvhostHTTPPort = %s\n' "$bind" "$TP_H" > "$WORK/frps.toml"
  printf 'serverAddr = "127.0.0.1"\nserverPort = %s\ntransport.tls.enable = false\n[[proxies]]\nname = "web"\ntype = "http"\nlocalPort = %s\ncustomDomains = ["%s"]\n' \
    "$bind" "$HTTP_PORT" "$VHOST_NAME" > "$WORK/frpc.toml"
  $TUN "$FRPS_BIN" -c "$WORK/frps.toml" >"$WORK/frps.log" 2>&1 & local s=$!; wait_port "$bind"
  $TUN "$FRPC_BIN" -c "$WORK/frpc.toml" >"$WORK/frpc.log" 2>&1 & local c=$!
  PIDS+=($s $c); TUNNEL_PIDS="$s $c"; wait_http "$TP_H" "$VHOST_NAME"
}
if want vhost; then
  measure_http "direct" "$HTTP_PORT" "$VHOST_NAME"
  FRPS_BIN=$BIN/frps FRPC_BIN=$BIN/frpc
  start_vhost; measure_http "frp-rs, vhostHTTPPort" "$TP_H" "$VHOST_NAME" $TUNNEL_PIDS; stop_tunnel
  if [ -n "${FRPS:-}" ] && [ -n "${FRPC:-}" ] || { command -v frps-go >/dev/null && command -v frpc-go >/dev/null; }; then
    FRPS_BIN=${FRPS:-frps-go} FRPC_BIN=${FRPC:-frpc-go}
    start_vhost; measure_http "Go frp, vhostHTTPPort" "$TP_H" "$VHOST_NAME" $TUNNEL_PIDS; stop_tunnel
  fi
fi

RATHOLE=${RATHOLE:-$(command -v rathole || true)}
if want rathole && [ -n "$RATHOLE" ]; then
  bind=$(free_port); TP_I=$(free_port); TP_H=$(free_port)
  printf '[server]\nbind_addr = "127.0.0.1:%s"\ndefault_token = "t"\n[server.services.iperf]\nbind_addr = "127.0.0.1:%s"\n[server.services.http]\nbind_addr = "127.0.0.1:%s"\n' "$bind" "$TP_I" "$TP_H" > "$WORK/rs.toml"
  printf '[client]\nremote_addr = "127.0.0.1:%s"\ndefault_token = "t"\n[client.services.iperf]\nlocal_addr = "127.0.0.1:%s"\n[client.services.http]\nlocal_addr = "127.0.0.1:%s"\n' "$bind" "$IPERF_PORT" "$HTTP_PORT" > "$WORK/rc.toml"
  $TUN "$RATHOLE" --server "$WORK/rs.toml" >"$WORK/rs.log" 2>&1 & s=$!; wait_port "$bind"
  $TUN "$RATHOLE" --client "$WORK/rc.toml" >"$WORK/rc.log" 2>&1 & c=$!
  PIDS+=($s $c); wait_port "$TP_I"; wait_port "$TP_H"; sleep 1
  measure "rathole $("$RATHOLE" --version 2>/dev/null | grep -o "[0-9]\+\.[0-9]\+\.[0-9]\+" | head -1)" "$TP_I" "$TP_H" $s $c
  kill $s $c
fi

[ ${#ROWS[@]} -eq 0 ] || {
  echo
  echo "## $(date -u +%Y-%m-%d) on $(nproc) cores, $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | xargs), ${SECS}s per figure, median of $RUNS"
  echo
  echo "| setup | iperf3 Gbit/s | 4 streams | reverse | tunnel CPU s/GB | keep-alive req/s | p99 ms | new conn req/s | p99 ms | p99 ms at ${RATE:-2000} req/s | KiB RSS/held conn ($(echo $HOLD | sed 's/ /; /g') held) | idle RSS MiB (anon) |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  for r in "${ROWS[@]}"; do echo "$r"; done
} | tee -a "$OUT"
[ ${#HROWS[@]} -eq 0 ] || {
  echo
  echo "## $(date -u +%Y-%m-%d) HTTP through vhostHTTPPort on $(nproc) cores, $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | xargs), ${SECS}s per figure, median of $RUNS"
  echo
  echo "wrk -t1 -c50 with \`Host: $VHOST_NAME\` against bench-backend; frp-rs and Go frp: one http proxy (customDomains), tcpMux on, TLS off, poolCount 1."
  echo
  echo "| setup | keep-alive req/s | p99 ms | new conn req/s | p99 ms | p99 ms at ${RATE:-2000} req/s |"
  echo "|---|---|---|---|---|---|"
  for r in "${HROWS[@]}"; do echo "$r"; done
} | tee -a "$OUT"
