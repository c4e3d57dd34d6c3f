#!/usr/bin/env bash
# Measures natter-smol, natter-std and the comparison peers side by side with
# natter-load: the server pinned to core 0, the load to core 1, loopback only.
#
# usage: conformance/scripts/bench.sh [SERVER...]
#   SERVER: natter-smol natter-std tungstenite fastwebsockets gorilla node-ws
#   (default: all). Environment: DURATION (seconds measured, default 10),
#   IDLE (idle members, default 10000), PEERS (the peers folder, default
#   ../shared/peers beside this checkout), PORT (first port, default 19100).
#
# Prints each natter-load report as it comes, then a summary table.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
peers=${PEERS:-$repo/../shared/peers}
duration=${DURATION:-10}
idle_members=${IDLE:-10000}
port=${PORT:-19100}
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(natter-smol natter-std tungstenite fastwebsockets gorilla node-ws)

ulimit -n 20000
cargo build --release -q -p natter-smol -p natter-std -p natter-conformance
load=$repo/target/release/natter-load
summary=$(mktemp)

# Starts server $1 on port $2 pinned to core 0; prints its pid.
start_server() {
  local name=$1 port=$2 log=/tmp/natter-bench-$1.log
  case $name in
    natter-smol|natter-std)
      taskset -c 0 "$repo/target/release/$name" --listen "127.0.0.1:$port" --echo \
        --no-rate-limit --max-connections 19000 --log-level warn >"$log" 2>&1 &
      ;;
    *)
      taskset -c 0 bash "$peers/$name/run.sh" "$port" >"$log" 2>&1 &
      ;;
  esac
  local pid=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$pid"
      return
    fi
    sleep 0.1
  done
  echo "server $name did not start; see $log" >&2
  kill "$pid" 2>/dev/null || true
  return 1
}

stop_server() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Runs one natter-load mode against a fresh server and keeps its report.
measure() {
  local name=$1 mode=$2; shift 2
  port=$((port + 1))
  local pid
  pid=$(start_server "$name" "$port") || return 0
  echo "--- $name: natter-load $mode $*"
  local report
  report=$(taskset -c 1 "$load" "$mode" --server "127.0.0.1:$port" --server-pid "$pid" \
    --duration "$duration" "$@" 2>&1) || true
  echo "$report"
  stop_server "$pid"
  printf '%s\t%s %s\t%s\n' "$name" "$mode" "$*" "$(echo "$report" | grep -E \
    'deliveries/s|messages/s|joins\+leaves/s|per member|latency|seq gaps|server cpu' \
    | tr '\n' ';')" >>"$summary"
}

if [[ " ${servers[*]} " == *" tungstenite "* || " ${servers[*]} " == *" fastwebsockets "* ]]; then
  PEER_BUILD_ONLY=1 bash "$peers/tungstenite/run.sh" && PEER_BUILD_ONLY=1 bash "$peers/fastwebsockets/run.sh"
fi

for server in "${servers[@]}"; do
  measure "$server" fanout --members 100 --senders 10 --size 64 --window 8
  measure "$server" echo --connections 100 --size 20
  measure "$server" echo --connections 100 --size 20 --window 8 --burst
  measure "$server" rooms --rooms 10 --members 10 --senders 2
  measure "$server" churn --concurrency 16
  members=$idle_members
  # Two threads a member: keep natter-std's idle run within the thread limit.
  [ "$server" = natter-std ] && members=$((idle_members < 2000 ? idle_members : 2000))
  measure "$server" idle --connections "$members" --room-size 100
  if [ "$server" = natter-std ]; then
    measure "$server" fanout --members 100 --senders 10 --size 64 --rate 100 --window 64
  fi
done

echo
echo "=== summary"
column -t -s $'\t' "$summary" || cat "$summary"
rm -f "$summary"
