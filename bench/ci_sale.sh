#!/usr/bin/env bash
# The end-to-end sale in CI: start the production-like topology (deploy/run_production.py:
# nginx, gunicorn, 2 uvicorn socket processes, Celery worker and beat, over PostgreSQL and
# Redis), run bench/loadtest.py with N buyers against it, stop everything, and exit with the
# harness's code (non-zero on any broken invariant or error).
#
#   bash bench/ci_sale.sh            # N=300
#   N=1000 bash bench/ci_sale.sh -- --capacity 100   # extra arguments go to loadtest.py
#   TOPOLOGY="--sockets daphne" bash bench/ci_sale.sh  # arguments for run_production.py
#   CLUSTER=1 EVENTS=3 bash bench/ci_sale.sh   # the store on a Redis Cluster of its own (three
#                                              # masters, a replica each); 3 sales at once, each
#                                              # its own queue (so its own hash slot), N in all
set -uo pipefail
cd "$(dirname "$0")/.."
N="${N:-300}"
[ "${1:-}" = "--" ] && shift
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p var/log
ready="var/run/ci_sale.ready"
log="var/log/ci_sale_topology.log"
rm -f "$ready"
EVENTS="${EVENTS:-1}"
cluster=""
stop_cluster() { [ -n "$cluster" ] && kill -TERM "$cluster" 2>/dev/null && wait "$cluster"; }
if [ "${CLUSTER:-0}" = "1" ]; then
  mkdir -p var/run
  : >var/run/ci_sale.cluster
  .venv/bin/python -m tests.redis_cluster >var/run/ci_sale.cluster &
  cluster=$!
  for _ in $(seq 120); do [ -s var/run/ci_sale.cluster ] && break; sleep 0.5; done
  if [ ! -s var/run/ci_sale.cluster ]; then echo "ci_sale: no Redis Cluster"; stop_cluster; exit 1; fi
  export TICKETQUEUE_REDIS_URL="$(cat var/run/ci_sale.cluster)" TICKETQUEUE_REDIS_CLUSTER=1
  echo "ci_sale: the store on a Redis Cluster: $TICKETQUEUE_REDIS_URL"
fi

# The buyers all come from this machine; each sends its own address in X-Forwarded-For, which
# the topology trusts as it would behind a CDN in front of nginx (docs/settings.md): the
# per-address limits then see one buyer per address, as in a real sale.
export TRUSTED_PROXIES="${TRUSTED_PROXIES:-2}"
# shellcheck disable=SC2086 # TOPOLOGY is a list of arguments
.venv/bin/python deploy/run_production.py --reset --ready-file "$ready" ${TOPOLOGY:-} >"$log" 2>&1 &
topology=$!
stop_topology() {
  if kill -0 "$topology" 2>/dev/null; then
    kill -TERM "$topology"
    wait "$topology"
    return $?
  fi
  wait "$topology" 2>/dev/null
}
trap 'stop_topology >/dev/null 2>&1; stop_cluster' EXIT INT TERM

for _ in $(seq 120); do
  [ -f "$ready" ] && break
  if ! kill -0 "$topology" 2>/dev/null; then
    echo "ci_sale: the topology failed to start:"; tail -n 60 "$log"; exit 1
  fi
  sleep 0.5
done
if [ ! -f "$ready" ]; then
  echo "ci_sale: the topology was not ready in 60 s:"; tail -n 60 "$log"; exit 1
fi
echo "ci_sale: topology up at $(cat "$ready"); $N buyers"

if [ "$EVENTS" -le 1 ]; then
  .venv/bin/python bench/loadtest.py --buyers "$N" --json var/log/ci_sale.json "$@"
  rc=$?
else
  sales=()
  for i in $(seq "$EVENTS"); do
    .venv/bin/python bench/loadtest.py --buyers $((N / EVENTS)) --seed "$i" \
      --json "var/log/ci_sale_$i.json" "$@" >"var/log/ci_sale_$i.log" 2>&1 &
    sales+=($!)
  done
  rc=0
  for i in $(seq "$EVENTS"); do
    wait "${sales[$((i - 1))]}" || rc=$?
    echo "-- sale $i of $EVENTS:"; cat "var/log/ci_sale_$i.log"
  done
fi

stop_topology
stopped=$?
stop_cluster
trap - EXIT INT TERM
if [ $rc -ne 0 ] || [ $stopped -ne 0 ]; then
  echo "ci_sale: harness exit $rc, topology exit $stopped; topology log tail:"
  tail -n 40 "$log"
fi
if [ $stopped -ne 0 ] && [ $rc -eq 0 ]; then
  echo "ci_sale: the topology did not stop cleanly"; exit 1
fi
exit $rc
