#!/usr/bin/env bash
# A local multi-node Ray cluster on 127.0.0.1 (one head + N worker nodes), for trying `ray job submit`.
#
#   bash cluster/local.sh start      # head + workers; prints the `ray job submit` address
#   bash cluster/local.sh status
#   bash cluster/local.sh stop       # stops only THIS cluster's processes (found by its temp dir)
#
# Settings (environment variables):
#   QGAN_RAY_TEMP_DIR   temp dir of this cluster (default /tmp/qgan-ray-local; keep it short: socket paths)
#   QGAN_RAY_BASE_PORT  first of the ports this cluster uses (default 26400); it uses
#                       BASE (GCS), BASE+1 (dashboard / job API), BASE+2 (Ray client),
#                       BASE+10+10*i .. BASE+15+10*i for node i's services, and
#                       BASE+100+100*i .. BASE+199+100*i for node i's worker processes
#   QGAN_RAY_WORKERS    worker nodes (default 1)
#   QGAN_RAY_CPUS       CPUs per node (default 1)
#   RAY                 the ray executable (default: `ray` on PATH, e.g. from .venv/bin)
#   RAY_AUTH_MODE       default token: every node and `ray job submit` use the token in ~/.ray/auth_token
#                       (created on first start; or set RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH)
#
# Never runs `ray stop` (that would stop every Ray instance of the user on this machine).
set -euo pipefail

TEMP_DIR=${QGAN_RAY_TEMP_DIR:-/tmp/qgan-ray-local}
BASE=${QGAN_RAY_BASE_PORT:-26400}
WORKERS=${QGAN_RAY_WORKERS:-1}
CPUS=${QGAN_RAY_CPUS:-1}
RAY=${RAY:-ray}
IP=127.0.0.1
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-$(dirname "$(command -v "$RAY")")/python}
[ -x "$PY" ] || PY=python3

node_ports() {  # node index -> the per-node port flags
  local i=$1 p=$((BASE + 10 + 10 * $1)) w=$((BASE + 100 + 100 * $1))
  echo "--node-manager-port=$p --object-manager-port=$((p + 1)) --dashboard-agent-listen-port=$((p + 2))" \
       "--dashboard-agent-grpc-port=$((p + 3)) --runtime-env-agent-port=$((p + 4)) --metrics-export-port=$((p + 5))" \
       "--min-worker-port=$w --max-worker-port=$((w + 99))"
}

start() {
  mkdir -p "$TEMP_DIR"
  if [ "$RAY_AUTH_MODE" = token ] && [ -z "${RAY_AUTH_TOKEN:-}" ]; then
    "$RAY" get-auth-token --generate > /dev/null   # creates ~/.ray/auth_token once; never printed
  fi
  # shellcheck disable=SC2046
  "$RAY" start --head --node-ip-address=$IP --port=$BASE --dashboard-host=$IP --dashboard-port=$((BASE + 1)) \
    --ray-client-server-port=$((BASE + 2)) --include-dashboard=true --num-cpus="$CPUS" --num-gpus=0 \
    --temp-dir="$TEMP_DIR" --disable-usage-stats $(node_ports 0)
  for i in $(seq 1 "$WORKERS"); do
    # each node its own temp dir: nodes sharing one would garbage-collect each other's runtime envs
    mkdir -p "$TEMP_DIR/w$i"
    # shellcheck disable=SC2046
    "$RAY" start --address=$IP:$BASE --node-ip-address=$IP --num-cpus="$CPUS" --num-gpus=0 \
      --temp-dir="$TEMP_DIR/w$i" --disable-usage-stats $(node_ports "$i")
  done
  echo
  echo "local Ray cluster up: head + $WORKERS worker node(s), $CPUS CPU(s) each, temp dir $TEMP_DIR"
  echo "submit a job:  $RAY job submit --address http://$IP:$((BASE + 1)) --working-dir . -- python sweeps/ferrite.py --preset smoke --storage /tmp/qgan-runs"
  echo "stop it:       bash cluster/local.sh stop"
}

status() {
  RAY_ADDRESS=$IP:$BASE "$RAY" status || true
}

stop() {
  "$PY" "$HERE/ray_procs.py" stop "$TEMP_DIR" --grace 5
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|status|stop   (settings: see the header of this script)" >&2; exit 2 ;;
esac
