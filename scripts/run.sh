#!/usr/bin/env bash
# Foreground runner behind `make run` (expects the virtualenv .venv to be installed).
#
# Starts (or reuses) the local PostgreSQL and Redis, migrates, collects static files,
# seeds the demo data, then serves until Ctrl-C / SIGTERM:
#   web     gunicorn config.wsgi:application on 127.0.0.1:${PORT:-8000}
#   worker  celery -A config worker (all queues)
#   beat    celery -A config beat (django-celery-beat database scheduler)
# It supervises the three: one that exits by itself (a worker killed by the OOM killer, beat
# failing while the database is down) is restarted after a backoff (1 s, doubling up to
# CHORUS_RESTART_MAX_DELAY=30 s, back to 1 s once it has stayed up for a minute), with a log
# line; five exits within five minutes are reported loudly, and it keeps restarting. Nothing
# else is stopped because one of them exited.
# Ctrl-C or SIGTERM (once, twice, or to the whole process group) stops the three (SIGTERM,
# then SIGKILL after CHORUS_STOP_TIMEOUT=6 seconds), then the services it started (see
# scripts/services.sh): everything is gone within 10 seconds.
#
# Knobs: PORT (8000), CHORUS_ACCESS_LOG=1 (gunicorn access log to stdout),
# WEB_CONCURRENCY (gunicorn workers, 2), CHORUS_STOP_TIMEOUT (6), GUNICORN_CMD_ARGS,
# CELERY_METRICS_PORT (the worker's metrics, PORT + 1000), LOG_LEVEL / LOG_FORMAT,
# CHORUS_RESTART_MAX_DELAY (30), CHORUS_SEED_DEMO (1; 0 skips the demo data).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"

# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.local}"
export PYTHONUNBUFFERED=1
PORT="${PORT:-8000}"
STOP_TIMEOUT="${CHORUS_STOP_TIMEOUT:-6}"
RESTART_MAX_DELAY="${CHORUS_RESTART_MAX_DELAY:-30}"
METRICS_PORT="${CELERY_METRICS_PORT:-$((PORT + 1000))}"

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
for knob in PORT STOP_TIMEOUT RESTART_MAX_DELAY METRICS_PORT; do
    if ! [[ "${!knob}" =~ ^[0-9]+$ ]]; then
        echo "==> ERROR: $knob must be a whole number, got '${!knob}'" >&2
        exit 1
    fi
done

declare -A PIDS=()    # name -> pid of a running child (each leads its own process group)
declare -A CMDS=()    # name -> its command line, quoted (for restarts)
declare -A STARTED=() # name -> when it was last started ($SECONDS)
declare -A DELAY=()   # name -> the backoff before its next restart (seconds)
declare -A CRASHES=() # name -> when it exited unexpectedly in the last five minutes
declare -A TIMERS=()  # pid of a backoff timer -> the name it restarts
CLEANED=0
STOPPING=0
SERVICES_ACQUIRED=0

stop_children() {
    local name pid i alive
    ((${#PIDS[@]})) || return 0
    echo "==> Stopping ${!PIDS[*]}"
    # SIGTERM to the leader only (gunicorn's master and celery's main process shut their
    # own workers down gracefully); to the whole group if the leader is already gone. The
    # web server first, so that it stops taking requests before the workers go.
    for name in web beat worker; do
        pid="${PIDS[$name]:-}"
        [[ -n "$pid" ]] || continue
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
    local rc=$? pid
    ((CLEANED)) && return 0
    CLEANED=1
    # Nothing may cut the way out short: a second Ctrl-C or SIGTERM (a process manager that
    # signals the whole group while make forwards the same signal) and SIGPIPE (`make run |
    # tee log` loses tee on Ctrl-C) are ignored from here on, so the stop always completes.
    trap '' INT TERM PIPE HUP
    set +e
    for pid in "${!TIMERS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    stop_children
    if ((SERVICES_ACQUIRED)); then svc_release "$$" || true; fi
    echo "==> Stopped"
    ((STOPPING)) && rc=0 # a requested stop that completes exits 0
    exit "$rc"
}
trap cleanup EXIT

# A signal only asks for the stop; the script then exits at its next step and the EXIT trap
# does the work, once. (Calling exit from the signal's own trap would let a second signal,
# arriving while the EXIT trap runs, end that trap before it has stopped anything.)
request_stop() {
    ((STOPPING)) && return 0
    STOPPING=1
    echo
    echo "==> $1: shutting down"
}
trap 'request_stop Ctrl-C' INT
trap 'request_stop SIGTERM' TERM
trap 'request_stop SIGHUP' HUP
stop_if_requested() {
    if ((STOPPING)); then exit 0; fi
}

# Start one long-running process in its own session/process group, so that a terminal
# Ctrl-C reaches only this script (which then stops everything in order) and the whole
# group (gunicorn workers, celery pool processes) can be signalled by the recorded pid.
start_child() {
    local name="$1"
    shift
    CMDS[$name]="$(printf '%q ' "$@")"
    setsid "$@" </dev/null &
    PIDS[$name]=$!
    STARTED[$name]=$SECONDS
    echo "==> Started $name (pid $!): $*"
}

restart_child() {
    local name="$1"
    eval "start_child $name ${CMDS[$name]}"
}

# A child exited without being asked to: clear what is left of its process group (celery
# pool processes orphaned by a SIGKILLed main process), then restart it after a backoff that
# doubles while it keeps failing and starts again at 1 s once it has stayed up for a minute.
on_child_exit() {
    local name="$1" pid="$2" status="$3" now=$SECONDS delay t timer
    local recent=()
    unset "PIDS[$name]"
    kill -KILL -- "-$pid" 2>/dev/null || true
    if ((now - ${STARTED[$name]:-0} >= 60)); then DELAY[$name]=1; fi
    delay="${DELAY[$name]:-1}"
    DELAY[$name]=$((delay * 2 > RESTART_MAX_DELAY ? RESTART_MAX_DELAY : delay * 2))
    for t in ${CRASHES[$name]:-} "$now"; do
        if ((now - t < 300)); then recent+=("$t"); fi
    done
    CRASHES[$name]="${recent[*]}"
    echo "==> $name (pid $pid) exited unexpectedly (status $status); restarting it in ${delay}s" >&2
    if ((${#recent[@]} >= 5)); then
        printf '==> ERROR: %s\n' \
            "*******************************************************************************" \
            "$name has exited ${#recent[@]} times in the last 5 minutes; still restarting it" \
            "(backoff up to ${RESTART_MAX_DELAY}s). Its output above says why." \
            "*******************************************************************************" >&2
    fi
    sleep "$delay" &
    timer=$!
    TIMERS[$timer]="$name"
}

SERVICES_ACQUIRED=1
svc_acquire auto "$$"
stop_if_requested

if svc_port_in_use "$PORT"; then
    echo "==> ERROR: port $PORT on 127.0.0.1 is already in use (another 'make run'?); try PORT=8001 make run" >&2
    exit 1
fi
if svc_port_in_use "$METRICS_PORT"; then
    echo "==> ERROR: port $METRICS_PORT (the worker's metrics) is in use; set CELERY_METRICS_PORT" >&2
    exit 1
fi

echo "==> Applying migrations"
python manage.py migrate --noinput
stop_if_requested
echo "==> Collecting static files"
python manage.py collectstatic --noinput >/dev/null
stop_if_requested
if [[ "${CHORUS_SEED_DEMO:-1}" == 1 ]]; then
    echo "==> Seeding demo data"
    python manage.py seed_demo
    stop_if_requested
fi

# Prometheus multiprocess directories, one per process tree (never shared): gunicorn's workers
# and the Celery worker's pool write their samples there, and each tree's exporter adds them up
# (docs/observability.md). Only web and worker get them: migrate, seed and beat write none.
METRICS_DIR="$SVC_LOCAL/run/metrics-$PORT"
rm -rf "$METRICS_DIR"
mkdir -p "$METRICS_DIR/web" "$METRICS_DIR/worker"

gunicorn_args=(-c python:config.gunicorn config.wsgi:application --bind "127.0.0.1:$PORT"
    --workers "${WEB_CONCURRENCY:-2}"
    --threads 4 --graceful-timeout "$STOP_TIMEOUT" --timeout 60
    --no-control-socket) # gunicorn 27's control socket would be one shared ~/.gunicorn/gunicorn.ctl
if [[ "${CHORUS_ACCESS_LOG:-0}" == 1 ]]; then gunicorn_args+=(--access-logfile -); fi

start_child web env PROMETHEUS_MULTIPROC_DIR="$METRICS_DIR/web" gunicorn "${gunicorn_args[@]}"
# Gossip, mingle and heartbeat are off: nothing here uses worker-to-worker events, and they only
# add broker traffic and bootsteps to restart after a connection loss (docs/resilience.md).
start_child worker env PROMETHEUS_MULTIPROC_DIR="$METRICS_DIR/worker" \
    CELERY_METRICS_PORT="$METRICS_PORT" \
    celery -A config worker -Q default,tallies,closing,rewards,integrity,analytics \
    --concurrency 2 --without-gossip --without-mingle --without-heartbeat
start_child beat celery -A config beat \
    --scheduler django_celery_beat.schedulers:DatabaseScheduler

# Wait for the web server to accept connections, then say where it is.
for ((i = 0; i < 300 && !STOPPING; i++)); do
    svc_port_in_use "$PORT" && break
    kill -0 "${PIDS[web]}" 2>/dev/null || break
    sleep 0.1
done
if ((!STOPPING)) && svc_port_in_use "$PORT"; then
    cat <<EOF

==> Chorus is up:
      API docs  http://127.0.0.1:$PORT/api/docs/
      Admin     http://127.0.0.1:$PORT/admin/
      Metrics   http://127.0.0.1:$PORT/metrics (web), http://127.0.0.1:$METRICS_PORT/metrics (worker)
    Press Ctrl-C to stop.

EOF
fi

# Supervise until a stop is requested: a trapped signal interrupts `wait`; a child's exit
# schedules its restart; the end of a backoff timer starts it again.
while ((!STOPPING)); do
    exited=""
    status=0
    wait -n -p exited "${PIDS[@]}" "${!TIMERS[@]}" || status=$?
    ((STOPPING)) && break
    [[ -n "$exited" ]] || continue
    if [[ -n "${TIMERS[$exited]:-}" ]]; then
        name="${TIMERS[$exited]}"
        unset "TIMERS[$exited]"
        restart_child "$name"
        continue
    fi
    for name in "${!PIDS[@]}"; do
        if [[ "${PIDS[$name]}" == "$exited" ]]; then
            on_child_exit "$name" "$exited" "$status"
            break
        fi
    done
done
exit 0
