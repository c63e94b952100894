#!/usr/bin/env bash
# Interop check: frp-rs's KCP (common/examples/kcp_echo.rs) against kcp-go v5 (main.go), both
# with frp's settings, both directions, clean and through a relay dropping every 20th datagram
# each way (lossy_relay.py). Not part of the test suite (it needs a Go toolchain).
#
#   bash bench/kcp-interop/run.sh
#
# Needs go >= 1.19 and python3. kcp-go v5.6.2 is used (same wire format as v5.6.13, which frp
# 0.70 pins; v5.6.3+ need go 1.21). Without access to the Go module proxy, set GOMODS to a
# directory holding checkouts named kcp-go, reedsolomon, cpuid, errors, net, sys (kcp-go's
# crypt.go replaced by a stub declaring BlockCrypt: frp uses no crypt); the script then adds
# replace directives for them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

cp "$here/main.go" "$here/go.mod" "$work/"
if [ -n "${GOMODS:-}" ]; then
  cat >> "$work/go.mod" <<MOD
replace (
	github.com/klauspost/cpuid/v2 => $GOMODS/cpuid
	github.com/klauspost/reedsolomon => $GOMODS/reedsolomon
	github.com/pkg/errors => $GOMODS/errors
	github.com/xtaci/kcp-go/v5 => $GOMODS/kcp-go
	golang.org/x/net => $GOMODS/net
	golang.org/x/sys => $GOMODS/sys
)
MOD
  export GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off
fi
(cd "$work" && go mod tidy >/dev/null 2>&1 || true; go build -o "$work/kcp-go-echo" .)
${CARGO:-cargo} build -p frp-common --example kcp_echo >&2
rs="$root/target/debug/examples/kcp_echo"
go_echo="$work/kcp-go-echo"

port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
N=${N:-10485760}
run() { # label server-cmd client-cmd lossy(0|1)
  local p; p=$(port)
  $2 "127.0.0.1:$p" >/dev/null 2>&1 & pids+=($!)
  sleep 0.5
  local target=$p
  if [ "$4" = 1 ]; then
    target=$(port); python3 "$here/lossy_relay.py" "$target" "$p" 20 >"$work/relay.log" 2>&1 & pids+=($!); sleep 0.3
  fi
  printf '%-40s ' "$1"; timeout 120 $3 "127.0.0.1:$target" "$N"
}
run "kcp-go server, frp-rs client" "$go_echo server" "$rs client" 0
run "frp-rs server, kcp-go client" "$rs server" "$go_echo client" 0
run "kcp-go server, frp-rs client, 5% loss" "$go_echo server" "$rs client" 1
run "frp-rs server, kcp-go client, 5% loss" "$rs server" "$go_echo client" 1
