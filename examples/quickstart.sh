#!/usr/bin/env bash
# Builds frp-rs and runs a working tunnel on 127.0.0.1 from the shipped conf/ files:
#   demo backend 127.0.0.1:8080  <-  frpc (conf/frpc.toml)  ->  frps 127.0.0.1:7000 (conf/frps.toml)  ->  127.0.0.1:6000
# Everything listens on 127.0.0.1 only, and frps accepts only frpc's with the token generated
# here (FRP_TOKEN). Ctrl-C stops everything.
#
# Environment (all optional):
#   FRP_SERVER_PORT  frps's port for frpc          (default 7000)
#   FRP_REMOTE_PORT  the tunnel's public port      (default 6000)
#   FRP_DEMO_PORT    the demo backend's port       (default 8080)
#   FRP_TOKEN        the token frpc logs in with   (default: a new random one)
#   FRP_BIN_DIR      use the frps/frpc/demo-backend binaries in this directory instead of building
#   QUICKSTART_CHECK=1  send one request through the tunnel, then stop (for CI)
set -euo pipefail
cd "$(dirname "$0")/.."

export FRP_SERVER_PORT="${FRP_SERVER_PORT:-7000}"
export FRP_REMOTE_PORT="${FRP_REMOTE_PORT:-6000}"
export FRP_DEMO_PORT="${FRP_DEMO_PORT:-8080}"
if [ -z "${FRP_TOKEN:-}" ]; then
  FRP_TOKEN="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
fi
export FRP_TOKEN

# A port something already listens on: say which, and how to choose another.
for var in FRP_SERVER_PORT FRP_REMOTE_PORT FRP_DEMO_PORT; do
  port="${!var}"
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "quickstart: port $port ($var) is already in use on 127.0.0.1." >&2
    other=$(( port < 55000 ? port + 10000 : port - 10000 ))
    echo "Choose another one, for example: $var=$other bash examples/quickstart.sh" >&2
    echo "(the other variables you set, FRP_SERVER_PORT, FRP_REMOTE_PORT, FRP_DEMO_PORT, FRP_BIN_DIR, still apply)" >&2
    exit 1
  fi
done

if [ -n "${FRP_BIN_DIR:-}" ]; then
  bin="$FRP_BIN_DIR"
else
  cargo build --release --bin frps --bin frpc --bin demo-backend
  bin=target/release
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # pid port what
  for _ in $(seq 1 100); do
    if ! kill -0 "$1" 2>/dev/null; then
      echo "quickstart: $3 exited; see its messages above" >&2
      exit 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "quickstart: $3 did not come up on 127.0.0.1:$2" >&2
  exit 1
}

"$bin/demo-backend" "127.0.0.1:$FRP_DEMO_PORT" & pids+=($!)
wait_port "${pids[-1]}" "$FRP_DEMO_PORT" "the demo backend"
"$bin/frps" -c conf/frps.toml & pids+=($!)
wait_port "${pids[-1]}" "$FRP_SERVER_PORT" "frps"
"$bin/frpc" -c conf/frpc.toml & pids+=($!)
wait_port "${pids[-1]}" "$FRP_REMOTE_PORT" "the tunnel (frpc)"

echo
echo "Tunnel is up. Connect to 127.0.0.1:$FRP_REMOTE_PORT, for example:"
echo "    curl http://127.0.0.1:$FRP_REMOTE_PORT/"
echo "frps takes frpc's with this token only (to connect your own: export FRP_TOKEN=$FRP_TOKEN)."
echo "Press Ctrl-C to stop."
if [ "${QUICKSTART_CHECK:-}" = 1 ]; then
  # Non-interactive check (used by CI): one request through the tunnel, then stop.
  exec 3<>"/dev/tcp/127.0.0.1/$FRP_REMOTE_PORT"
  printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' >&3
  reply=$(cat <&3)
  echo "$reply" | grep -q "hello from the frp-rs demo backend" && echo "quickstart: tunnel OK"
  exit 0
fi
wait
