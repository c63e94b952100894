#!/usr/bin/env bash
# Builds frp-rs and runs a working tunnel on 127.0.0.1 from the shipped conf/ files:
#   demo backend 127.0.0.1:8080  <-  frpc (conf/frpc.toml)  ->  frps :7000 (conf/frps.toml)  ->  127.0.0.1:6000
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bin frps --bin frpc --bin demo-backend

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

wait_port() { # host port what
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$3 did not come up on $1:$2" >&2
  exit 1
}

target/release/demo-backend 127.0.0.1:8080 & pids+=($!)
wait_port 127.0.0.1 8080 "demo backend"
target/release/frps -c conf/frps.toml & pids+=($!)
wait_port 127.0.0.1 7000 "frps"
target/release/frpc -c conf/frpc.toml & pids+=($!)
wait_port 127.0.0.1 6000 "the tunnel"

echo
echo "Tunnel is up. Connect to 127.0.0.1:6000, for example:"
echo "    curl http://127.0.0.1:6000/"
echo "Press Ctrl-C to stop."
if [ "${QUICKSTART_CHECK:-}" = 1 ]; then
  # Non-interactive check (used by CI): one request through the tunnel, then stop.
  exec 3<>/dev/tcp/127.0.0.1/6000
  printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' >&3
  reply=$(cat <&3)
  echo "$reply" | grep -q "hello from the frp-rs demo backend" && echo "quickstart: tunnel OK"
  exit 0
fi
wait
