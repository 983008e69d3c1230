#!/usr/bin/env bash
# Foreground runner behind `make run` (expects the virtualenv .venv to be installed).
#
# Starts (or reuses) the local PostgreSQL and Redis, migrates, collects static files,
# seeds the demo data, then serves until Ctrl-C / SIGTERM:
#   web     gunicorn config.wsgi:application on 127.0.0.1:${PORT:-8000}
#   worker  celery -A config worker (all queues)
#   beat    celery -A config beat (django-celery-beat database scheduler)
# On the way out it stops the three (SIGTERM, then SIGKILL after
# CHORUS_STOP_TIMEOUT=10 seconds) and the services it started (see scripts/services.sh).
# If one of the three exits by itself, the others are stopped and the exit is non-zero.
#
# Knobs: PORT (8000), CHORUS_ACCESS_LOG=1 (gunicorn access log to stdout),
# WEB_CONCURRENCY (gunicorn workers, 2), CHORUS_STOP_TIMEOUT (10), GUNICORN_CMD_ARGS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"

# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.local}"
export PYTHONUNBUFFERED=1
PORT="${PORT:-8000}"
STOP_TIMEOUT="${CHORUS_STOP_TIMEOUT:-10}"

if [[ ! -x "$ROOT/.venv/bin/python" ]]; then
    echo "==> ERROR: .venv is missing; use 'make run' (it installs the virtualenv first)" >&2
    exit 1
fi
export VIRTUAL_ENV="$ROOT/.venv"
export PATH="$ROOT/.venv/bin:$PATH"

if [[ ! -f "$ROOT/manage.py" ]]; then
    echo "==> ERROR: manage.py not found in $ROOT" >&2
    exit 1
fi
if ! [[ "$PORT" =~ ^[0-9]+$ ]]; then
    echo "==> ERROR: PORT must be a number, got '$PORT'" >&2
    exit 1
fi

declare -A PIDS=()     # name -> pid (each child leads its own process group)
CLEANED=0
SERVICES_ACQUIRED=0

stop_children() {
    local name pid i alive
    ((${#PIDS[@]})) || return 0
    echo "==> Stopping ${!PIDS[*]}"
    # SIGTERM to the leader only (gunicorn's master and celery's main process shut their
    # own workers down gracefully); to the whole group if the leader is already gone.
    for name in "${!PIDS[@]}"; do
        pid="${PIDS[$name]}"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        else
            kill -TERM -- "-$pid" 2>/dev/null || true
        fi
    done
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        alive=0
        for name in "${!PIDS[@]}"; do
            if kill -0 -- "-${PIDS[$name]}" 2>/dev/null; then alive=1; fi
        done
        ((alive)) || break
        sleep 0.1
    done
    for name in "${!PIDS[@]}"; do
        pid="${PIDS[$name]}"
        if kill -0 -- "-$pid" 2>/dev/null; then
            echo "==> $name (pid $pid) still running after ${STOP_TIMEOUT}s: SIGKILL" >&2
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for name in "${!PIDS[@]}"; do
        wait "${PIDS[$name]}" 2>/dev/null || true
    done
    PIDS=()
}

cleanup() {
    local rc=$?
    ((CLEANED)) && return 0
    CLEANED=1
    # Finish cleaning up even if Ctrl-C is pressed again, and even if our output is gone
    # (`make run | tee log` + Ctrl-C kills tee too: writing would raise SIGPIPE).
    trap '' INT TERM PIPE
    set +e
    stop_children
    if ((SERVICES_ACQUIRED)); then svc_release "$$" || true; fi
    echo "==> Stopped"
    exit "$rc"
}
trap cleanup EXIT
# A requested stop (Ctrl-C, SIGTERM) that completes cleanly exits 0.
trap 'echo; echo "==> Ctrl-C: shutting down"; exit 0' INT
trap 'echo "==> SIGTERM: shutting down"; exit 0' TERM

# Start one long-running process in its own session/process group, so that a terminal
# Ctrl-C reaches only this script (which then stops everything in order) and the whole
# group (gunicorn workers, celery pool processes) can be signalled by the recorded pid.
start_child() {
    local name="$1"
    shift
    setsid "$@" </dev/null &
    PIDS[$name]=$!
    echo "==> Started $name (pid $!): $*"
}

SERVICES_ACQUIRED=1
svc_acquire auto "$$"

if svc_port_in_use "$PORT"; then
    echo "==> ERROR: port $PORT on 127.0.0.1 is already in use (another 'make run'?); try PORT=8001 make run" >&2
    exit 1
fi

echo "==> Applying migrations"
python manage.py migrate --noinput
echo "==> Collecting static files"
python manage.py collectstatic --noinput >/dev/null
echo "==> Seeding demo data"
python manage.py seed_demo

gunicorn_args=(config.wsgi:application --bind "127.0.0.1:$PORT" --workers "${WEB_CONCURRENCY:-2}"
    --threads 4 --graceful-timeout "$STOP_TIMEOUT" --timeout 60
    --no-control-socket) # gunicorn 27's control socket would be one shared ~/.gunicorn/gunicorn.ctl
if [[ "${CHORUS_ACCESS_LOG:-0}" == 1 ]]; then gunicorn_args+=(--access-logfile -); fi

start_child web gunicorn "${gunicorn_args[@]}"
start_child worker celery -A config worker -Q default,tallies,closing,rewards,integrity,analytics \
    --concurrency 2 -l info
start_child beat celery -A config beat -l info \
    --scheduler django_celery_beat.schedulers:DatabaseScheduler

# Wait for the web server to accept connections, then say where it is.
for ((i = 0; i < 300; i++)); do
    svc_port_in_use "$PORT" && break
    kill -0 "${PIDS[web]}" 2>/dev/null || break
    sleep 0.1
done
if svc_port_in_use "$PORT"; then
    cat <<EOF

==> Chorus is up:
      API docs  http://127.0.0.1:$PORT/api/docs/
      Admin     http://127.0.0.1:$PORT/admin/
    Press Ctrl-C to stop.

EOF
fi

# Run until a signal arrives or one of the three exits on its own.
exited=""
rc=0
wait -n -p exited "${PIDS[@]}" || rc=$?
for name in "${!PIDS[@]}"; do
    if [[ "${PIDS[$name]}" == "$exited" ]]; then
        echo "==> ERROR: $name (pid $exited) exited unexpectedly (status $rc); stopping the rest" >&2
    fi
done
((rc != 0)) || rc=1
exit "$rc"
