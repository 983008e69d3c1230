#!/usr/bin/env bash
# Project-local PostgreSQL and Redis for development, tests and benchmarks.
#
#   scripts/services.sh start          start (or reuse) both and keep them running
#   scripts/services.sh stop           stop both (whoever started them)
#   scripts/services.sh status         show what is running
#   scripts/services.sh clean          stop, then delete all local data (.local/)
#   scripts/services.sh with CMD...    start what is missing, run CMD with the
#                                      environment below, then stop what an automatic
#                                      run started once nothing else uses it; exits
#                                      with CMD's exit code
#
# The script can also be sourced (scripts/run.sh does): it then only defines the
# svc_* functions and exports the environment.
#
# Environment contract (each is left alone when the caller has set it):
#   CHORUS_LOCAL_DIR  where data, logs and run records live (default .local/ in the checkout)
#   DATABASE_URL      postgres://chorus:chorus@127.0.0.1:${CHORUS_PG_PORT:-15432}/chorus
#   REDIS_URL         redis://127.0.0.1:${CHORUS_REDIS_PORT:-16379}/0
#   CELERY_BROKER_URL redis://127.0.0.1:${CHORUS_REDIS_PORT:-16379}/1
# A local server is managed only while one of its URLs is unset or equal to the
# default above; point DATABASE_URL (or both REDIS_URL and CELERY_BROKER_URL) at
# your own servers and nothing is started here for it.
#
# Data lives under .local/ (git-ignored): .local/postgres (cluster), .local/postgres.log,
# .local/redis (AOF, pid file, log), .local/run (lock, usage records).
#
# Who stops what: "start" keeps the services running until "stop". "with" (make test,
# make bench, make lint) and scripts/run.sh (make run) record that they use the services;
# on the way out they stop a service only if an automatic run started it and no other
# run (a still-running `make run`, say) is using it. Services that were already running
# when an automatic run began are left running.

# ---------------------------------------------------------------------------------------
# Paths and environment
# ---------------------------------------------------------------------------------------
CHORUS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# CHORUS_LOCAL_DIR moves all of it elsewhere (the resilience tests run a whole second stack,
# with its own servers on other ports, beside the suite's own).
SVC_LOCAL="${CHORUS_LOCAL_DIR:-$CHORUS_ROOT/.local}"
SVC_RUN="$SVC_LOCAL/run"
SVC_REDIS_DIR="$SVC_LOCAL/redis"

: "${CHORUS_PG_PORT:=15432}"
: "${CHORUS_REDIS_PORT:=16379}"
export CHORUS_PG_PORT CHORUS_REDIS_PORT

SVC_DEFAULT_DATABASE_URL="postgres://chorus:chorus@127.0.0.1:${CHORUS_PG_PORT}/chorus"
SVC_DEFAULT_REDIS_URL="redis://127.0.0.1:${CHORUS_REDIS_PORT}/0"
SVC_DEFAULT_BROKER_URL="redis://127.0.0.1:${CHORUS_REDIS_PORT}/1"

# Decide before filling in the defaults whether the local servers are needed.
SVC_WANT_PG=0
SVC_WANT_REDIS=0
if [[ -z "${DATABASE_URL:-}" || "$DATABASE_URL" == "$SVC_DEFAULT_DATABASE_URL" ]]; then
    SVC_WANT_PG=1
fi
if [[ -z "${REDIS_URL:-}" || "$REDIS_URL" == "$SVC_DEFAULT_REDIS_URL" ||
      -z "${CELERY_BROKER_URL:-}" || "$CELERY_BROKER_URL" == "$SVC_DEFAULT_BROKER_URL" ]]; then
    SVC_WANT_REDIS=1
fi
: "${DATABASE_URL:=$SVC_DEFAULT_DATABASE_URL}"
: "${REDIS_URL:=$SVC_DEFAULT_REDIS_URL}"
: "${CELERY_BROKER_URL:=$SVC_DEFAULT_BROKER_URL}"
export DATABASE_URL REDIS_URL CELERY_BROKER_URL

# ---------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------
svc_say() { printf '==> %s\n' "$*"; }
svc_warn() { printf '==> WARNING: %s\n' "$*" >&2; }
svc_die() { # fatal: exits (a sourcing script's EXIT trap then cleans up)
    printf '==> ERROR: %s\n' "$*" >&2
    exit 1
}
svc_is_root() { [[ "$(id -u)" -eq 0 ]]; }
svc_rel() { # a path relative to the project, for messages
    local p="$1"
    if [[ "$p" == "$CHORUS_ROOT/"* ]]; then printf '%s' "${p#"$CHORUS_ROOT"/}"; else printf '%s' "$p"; fi
}
svc_pid_state() { awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || true; }
# alive = exists and is not a zombie (a killed daemon stays a zombie until PID 1 reaps it)
svc_pid_alive() { [[ -n "${1:-}" && -d "/proc/$1" && "$(svc_pid_state "$1")" != Z ]]; }
svc_wait_zombie_gone() { # after a kill -9 the pid (still in the server's pid file) lingers
    local i
    for ((i = 0; i < 150; i++)); do
        [[ "$(svc_pid_state "$1")" == Z ]] || return 0
        sleep 0.1
    done
}
svc_path_hash() { printf '%s' "$SVC_LOCAL" | sha256sum | cut -c1-10; }

svc_check_port() {
    local name="$1" value="$2"
    if ! [[ "$value" =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
        svc_die "$name must be a TCP port number, got '$value'"
    fi
}

svc_lock() {
    mkdir -p "$SVC_RUN"
    exec 9>>"$SVC_RUN/lock"
    if command -v flock >/dev/null 2>&1; then
        flock -w 300 9 || svc_die "timed out waiting for $(svc_rel "$SVC_RUN/lock")"
    fi
}
svc_unlock() {
    if command -v flock >/dev/null 2>&1; then flock -u 9 || true; fi
    exec 9>&-
}

svc_apt_install() { # svc_apt_install PKG... (root only)
    svc_say "Installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || svc_die "apt-get update failed"
    apt-get install -y -qq "$@" || svc_die "apt-get install $* failed"
}

svc_missing_packages() {
    local pkgs=()
    if [[ $SVC_WANT_PG == 1 ]] && ! svc_pg_find_bindir >/dev/null; then pkgs+=(postgresql); fi
    if [[ $SVC_WANT_REDIS == 1 ]] && ! command -v redis-server >/dev/null 2>&1 \
        && [[ ! -x /usr/bin/redis-server ]]; then
        pkgs+=(redis-server)
    fi
    if ((${#pkgs[@]})); then printf '%s\n' "${pkgs[@]}"; fi
}

svc_ensure_packages() {
    local missing
    missing="$(svc_missing_packages | tr '\n' ' ')"
    missing="${missing% }"
    [[ -z "$missing" ]] && return 0
    if svc_is_root; then
        # shellcheck disable=SC2086
        svc_apt_install $missing
        missing="$(svc_missing_packages | tr '\n' ' ')"
        [[ -z "${missing% }" ]] || svc_die "still missing after install: $missing"
    else
        printf '==> ERROR: PostgreSQL and Redis servers are needed (missing: %s). Install them with:\n' \
            "$missing" >&2
        printf '\n    sudo apt-get install postgresql redis-server\n\n' >&2
        printf '    (or set DATABASE_URL / REDIS_URL / CELERY_BROKER_URL to servers you run yourself)\n' >&2
        exit 1
    fi
}

# ---------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------
# Where the server binaries are: PostgreSQL 15 preferred, then the newest one installed,
# then pg_config --bindir. With an existing cluster, the version it was made with.
svc_pg_find_bindir() {
    local want="" d
    if [[ -f "$SVC_LOCAL/postgres/PG_VERSION" ]]; then
        want="$(cat "$SVC_LOCAL/postgres/PG_VERSION" 2>/dev/null || true)"
    fi
    if [[ -n "$want" && -x "/usr/lib/postgresql/$want/bin/initdb" ]]; then
        printf '%s\n' "/usr/lib/postgresql/$want/bin"
        return 0
    fi
    if [[ -x /usr/lib/postgresql/15/bin/initdb ]]; then
        printf '%s\n' /usr/lib/postgresql/15/bin
        return 0
    fi
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -n "$d" && -x "$d/initdb" ]]; then
        printf '%s\n' "$d"
        return 0
    fi
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        if [[ -n "$d" && -x "$d/initdb" ]]; then
            printf '%s\n' "$d"
            return 0
        fi
    fi
    return 1
}

svc_pg_tool() { # path of a client tool, preferring the server's bindir
    if [[ -x "$SVC_PG_BIN/$1" ]]; then printf '%s\n' "$SVC_PG_BIN/$1"; else command -v "$1"; fi
}

# Run a command as the user that owns the cluster. As root that is never root (initdb and
# postgres refuse it): the owner of an existing data dir, else the 'postgres' system user.
svc_as_pg() {
    if [[ "$SVC_PG_USER" == "$(id -un)" ]]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        (cd / && runuser -u "$SVC_PG_USER" -- "$@")
    else
        local q
        printf -v q '%q ' "$@"
        (cd / && su "$SVC_PG_USER" -s /bin/sh -c "$q")
    fi
}

# Sets SVC_PG_BIN, SVC_PG_USER, SVC_PG_DATA (real path), SVC_PG_LOG, SVC_PG_SOCK.
svc_pg_setup_paths() {
    SVC_PG_BIN="$(svc_pg_find_bindir)" || svc_die "no PostgreSQL server binaries found"
    mkdir -p "$SVC_LOCAL"
    local link="$SVC_LOCAL/postgres" base="$SVC_LOCAL"

    if svc_is_root; then
        chmod u+rwx,go+x "$SVC_LOCAL" 2>/dev/null || true
        if [[ -e "$link" ]]; then
            SVC_PG_USER="$(stat -L -c %U "$link")"
            [[ "$SVC_PG_USER" == root ]] && SVC_PG_USER=postgres
        else
            SVC_PG_USER=postgres
        fi
        id -u "$SVC_PG_USER" >/dev/null 2>&1 ||
            svc_die "system user '$SVC_PG_USER' does not exist (it comes with the postgresql package)"
        if [[ -L "$link" ]]; then
            base="$(dirname "$(readlink -f "$link")")"
        elif [[ ! -e "$link" ]] && ! (cd / && runuser -u "$SVC_PG_USER" -- test -x "$SVC_LOCAL") 2>/dev/null; then
            # The server user cannot reach the checkout (e.g. it is under /root, mode 700):
            # keep the cluster in /var/tmp and point .local/postgres at it.
            base="/var/tmp/chorus-$(svc_path_hash)"
            svc_say "PostgreSQL: user '$SVC_PG_USER' cannot reach $(svc_rel "$SVC_LOCAL") (a parent directory is private);"
            svc_say "            keeping the cluster in $base/postgres, linked from .local/postgres"
            mkdir -p "$base"
            chmod 0755 "$base"
            ln -sfn "$base/postgres" "$link"
            touch "$base/postgres.log"
            chown "$SVC_PG_USER": "$base/postgres.log"
            ln -sfn "$base/postgres.log" "$SVC_LOCAL/postgres.log"
        fi
    else
        SVC_PG_USER="$(id -un)"
        if [[ -e "$link" ]] && [[ "$(stat -L -c %U "$link")" != "$SVC_PG_USER" ]]; then
            svc_die "$(svc_rel "$link") belongs to $(stat -L -c %U "$link"), not to you; run as that user, or 'make clean-data' as root"
        fi
        if [[ -L "$link" ]]; then base="$(dirname "$(readlink -f "$link")")"; fi
    fi

    SVC_PG_DATA="$(readlink -f "$link" 2>/dev/null || printf '%s' "$link")"
    SVC_PG_LOG="$base/postgres.log"

    # Unix socket in the data dir (mode 700: only the server user gets in). A socket path
    # is limited to 107 bytes; deep checkouts use a private directory under /tmp instead.
    SVC_PG_SOCK="$SVC_PG_DATA"
    if ((${#SVC_PG_SOCK} + 20 > 107)); then
        SVC_PG_SOCK="/tmp/chorus-pg-$(svc_path_hash)"
    fi
}

svc_pg_prepare_sockdir() {
    [[ "$SVC_PG_SOCK" == "$SVC_PG_DATA" ]] && return 0
    if [[ ! -d "$SVC_PG_SOCK" ]]; then
        mkdir -m 0700 "$SVC_PG_SOCK"
        if svc_is_root; then chown "$SVC_PG_USER": "$SVC_PG_SOCK"; fi
    fi
}

svc_pg_running() {
    [[ -f "$SVC_PG_DATA/PG_VERSION" ]] || return 1
    local pid
    pid="$(head -n 1 "$SVC_PG_DATA/postmaster.pid" 2>/dev/null || true)"
    # pg_ctl would take a dead-but-unreaped postmaster for a running one
    if [[ "$pid" =~ ^[0-9]+$ ]]; then svc_wait_zombie_gone "$pid"; fi
    svc_as_pg "$SVC_PG_BIN/pg_ctl" -D "$SVC_PG_DATA" status >/dev/null 2>&1
}

svc_pg_initdb() {
    local tmp="$SVC_PG_DATA.init" locale_opt=(--no-locale) out
    if locale -a 2>/dev/null | grep -qix 'c\.utf-\?8'; then locale_opt=(--locale=C.UTF-8); fi

    svc_say "PostgreSQL: creating a new cluster in $(svc_rel "$SVC_LOCAL/postgres")"
    rm -rf "$tmp"
    mkdir -m 0700 "$tmp"
    if svc_is_root; then chown "$SVC_PG_USER": "$tmp"; fi
    if ! out="$(svc_as_pg "$SVC_PG_BIN/initdb" -D "$tmp" -U postgres --encoding=UTF8 "${locale_opt[@]}" \
        --auth-local=trust --auth-host=scram-sha-256 2>&1)"; then
        printf '%s\n' "$out" >&2
        rm -rf "$tmp"
        svc_die "initdb failed"
    fi
    # The data dir is private (700) and so is the socket in it: 'trust' over the socket
    # only lets the server's own user in. TCP is loopback-only and needs a password.
    svc_as_pg sh -c "cat >> '$tmp/postgresql.conf'" <<EOF

# --- Chorus local development cluster (scripts/services.sh) ---
# listen_addresses, port and unix_socket_directories are also passed on the command line
# at each start (CHORUS_PG_PORT may change).
listen_addresses = '127.0.0.1'
port = $CHORUS_PG_PORT
unix_socket_directories = '$SVC_PG_SOCK'
max_connections = 200
shared_buffers = 256MB
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    # rename into place only once complete: an interrupted initdb leaves no half cluster
    if [[ -d "$SVC_PG_DATA" ]]; then rmdir "$SVC_PG_DATA" 2>/dev/null || true; fi
    [[ -e "$SVC_PG_DATA" ]] && svc_die "$SVC_PG_DATA exists but is not a cluster; run 'make clean-data'"
    mv "$tmp" "$SVC_PG_DATA"
}

svc_pg_psql_admin() { # SQL on stdin, as the bootstrap superuser over the unix socket
    svc_as_pg "$(svc_pg_tool psql)" -X -q -v ON_ERROR_STOP=1 -h "$SVC_PG_SOCK" -p "$CHORUS_PG_PORT" \
        -U postgres -d postgres
}

svc_pg_ensure_role_db() {
    svc_pg_psql_admin <<'EOF' >/dev/null
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'chorus') THEN
        CREATE ROLE chorus LOGIN SUPERUSER CREATEDB PASSWORD 'chorus';
    END IF;
END
$$;
SELECT 'CREATE DATABASE chorus OWNER chorus'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'chorus')\gexec
EOF
}

svc_port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Returns 0 after starting it, 2 if it was already running.
svc_pg_start() {
    svc_check_port CHORUS_PG_PORT "$CHORUS_PG_PORT" || return 1
    svc_pg_setup_paths || return 1
    if svc_pg_running; then
        svc_pg_prepare_sockdir
        svc_pg_ensure_role_db ||
            svc_die "PostgreSQL is running but not answering on port $CHORUS_PG_PORT (started with another CHORUS_PG_PORT? log: $(svc_rel "$SVC_PG_LOG"))"
        svc_say "PostgreSQL: already running on 127.0.0.1:$CHORUS_PG_PORT (reused)"
        return 2
    fi
    if [[ ! -f "$SVC_PG_DATA/PG_VERSION" ]]; then
        svc_pg_initdb
    fi
    if svc_port_in_use "$CHORUS_PG_PORT"; then
        svc_die "port $CHORUS_PG_PORT is taken by another program; choose another with CHORUS_PG_PORT=..."
    fi
    svc_pg_prepare_sockdir
    if [[ ! -e "$SVC_PG_LOG" ]]; then
        touch "$SVC_PG_LOG"
        if svc_is_root; then chown "$SVC_PG_USER": "$SVC_PG_LOG"; fi
    fi
    svc_say "PostgreSQL: starting on 127.0.0.1:$CHORUS_PG_PORT (log: $(svc_rel "$SVC_LOCAL/postgres.log"))"
    # The default ports lie in Linux's ephemeral range (32768-60999): a client connection
    # elsewhere on the machine can hold the port for a moment. Retry on "in use".
    local attempt offset out
    for ((attempt = 1; ; attempt++)); do
        offset="$(stat -c %s "$SVC_PG_LOG" 2>/dev/null || echo 0)"
        if out="$(svc_as_pg "$SVC_PG_BIN/pg_ctl" -D "$SVC_PG_DATA" -l "$SVC_PG_LOG" -w -t 90 -s \
            -o "-h 127.0.0.1 -p $CHORUS_PG_PORT -k '$SVC_PG_SOCK'" start 9>&- </dev/null 2>&1)"; then
            break
        fi
        if ((attempt < 15)) && tail -c "+$((offset + 1))" "$SVC_PG_LOG" 2>/dev/null | grep -q 'Address already in use'; then
            svc_say "PostgreSQL: port $CHORUS_PG_PORT is briefly in use (a client's ephemeral port?); retrying"
            sleep 1
            continue
        fi
        printf '%s\n' "$out" >&2
        tail -c "+$((offset + 1))" "$SVC_PG_LOG" 2>/dev/null | tail -n 25 >&2 || true
        svc_die "PostgreSQL did not start (see $(svc_rel "$SVC_LOCAL/postgres.log"))"
    done
    svc_pg_ensure_role_db || svc_die "could not create role/database 'chorus'"
    return 0
}

svc_pg_stop() {
    [[ -e "$SVC_LOCAL/postgres" || -L "$SVC_LOCAL/postgres" ]] || return 0
    svc_pg_find_bindir >/dev/null || return 0
    svc_pg_setup_paths
    if svc_pg_running; then
        svc_say "PostgreSQL: stopping"
        svc_as_pg "$SVC_PG_BIN/pg_ctl" -D "$SVC_PG_DATA" -m fast -w -t 60 -s stop ||
            svc_warn "pg_ctl stop failed (see $(svc_rel "$SVC_LOCAL/postgres.log"))"
    fi
}

# ---------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------
svc_redis_bin() { command -v "$1" 2>/dev/null || printf '/usr/bin/%s\n' "$1"; }

svc_redis_ping() {
    [[ "$("$(svc_redis_bin redis-cli)" -h 127.0.0.1 -p "$CHORUS_REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

svc_redis_pid() { # pid of the redis-server this project started, if it is alive
    local pid
    pid="$(cat "$SVC_REDIS_DIR/redis.pid" 2>/dev/null || true)"
    if svc_pid_alive "$pid" && grep -q redis "/proc/$pid/comm" 2>/dev/null; then
        printf '%s\n' "$pid"
    else
        return 1
    fi
}

svc_redis_start() {
    svc_check_port CHORUS_REDIS_PORT "$CHORUS_REDIS_PORT" || return 1
    if svc_redis_ping; then
        if svc_redis_pid >/dev/null; then
            svc_say "Redis: already running on 127.0.0.1:$CHORUS_REDIS_PORT (reused)"
        else
            svc_say "Redis: a server not started from this checkout answers on 127.0.0.1:$CHORUS_REDIS_PORT (reused)"
        fi
        return 2
    fi
    if svc_port_in_use "$CHORUS_REDIS_PORT"; then
        svc_die "port $CHORUS_REDIS_PORT is taken by another program; choose another with CHORUS_REDIS_PORT=..."
    fi
    mkdir -p "$SVC_REDIS_DIR"
    svc_say "Redis: starting on 127.0.0.1:$CHORUS_REDIS_PORT (log: $(svc_rel "$SVC_REDIS_DIR/redis.log"))"
    local attempt offset i pid
    for ((attempt = 1; ; attempt++)); do
        offset="$(stat -c %s "$SVC_REDIS_DIR/redis.log" 2>/dev/null || echo 0)"
        rm -f "$SVC_REDIS_DIR/redis.pid"
        "$(svc_redis_bin redis-server)" --bind 127.0.0.1 --port "$CHORUS_REDIS_PORT" \
            --dir "$SVC_REDIS_DIR" --daemonize yes --pidfile "$SVC_REDIS_DIR/redis.pid" \
            --logfile "$SVC_REDIS_DIR/redis.log" --appendonly yes --save '' 9>&- </dev/null ||
            svc_die "redis-server failed to start"
        for ((i = 0; i < 150; i++)); do
            svc_redis_ping && return 0
            # gave up already (it daemonizes before binding, so look for its pid)?
            if ((i >= 5)) && ! svc_redis_pid >/dev/null; then break; fi
            sleep 0.1
        done
        if ((attempt < 15)) && tail -c "+$((offset + 1))" "$SVC_REDIS_DIR/redis.log" 2>/dev/null |
            grep -q 'Address already in use'; then
            svc_say "Redis: port $CHORUS_REDIS_PORT is briefly in use (a client's ephemeral port?); retrying"
            sleep 1
            continue
        fi
        tail -c "+$((offset + 1))" "$SVC_REDIS_DIR/redis.log" 2>/dev/null | tail -n 20 >&2 || true
        if pid="$(svc_redis_pid)"; then kill -TERM "$pid" 2>/dev/null || true; fi
        svc_die "Redis did not answer on port $CHORUS_REDIS_PORT (see $(svc_rel "$SVC_REDIS_DIR/redis.log"))"
    done
}

svc_redis_stop() {
    local pid i
    pid="$(svc_redis_pid)" || return 0
    svc_say "Redis: stopping"
    "$(svc_redis_bin redis-cli)" -h 127.0.0.1 -p "$CHORUS_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    for ((i = 0; i < 100; i++)); do
        svc_pid_alive "$pid" || return 0
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        svc_pid_alive "$pid" || return 0
        sleep 0.1
    done
    svc_warn "Redis (pid $pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------
# Start / release with usage records
# ---------------------------------------------------------------------------------------
# svc_acquire auto|manual [PID]
#   auto:   record PID (default: this shell) as a user; a service started now is marked
#           for stopping by svc_release once no recorded user is left.
#   manual: start what is missing and keep everything running (clears those marks).
svc_acquire() {
    local mode="${1:-auto}" pid="${2:-$$}" rc
    if [[ $SVC_WANT_PG == 0 && $SVC_WANT_REDIS == 0 ]]; then
        svc_say "Using DATABASE_URL, REDIS_URL and CELERY_BROKER_URL from the environment (no local servers)"
        return 0
    fi
    svc_ensure_packages
    svc_lock
    # A failure below exits; the caller's EXIT trap (svc_release) then stops what this
    # call started, because the marks are set right after each start.
    if [[ $SVC_WANT_PG == 1 ]]; then
        rc=0
        svc_pg_start || rc=$?
        if ((rc == 1)); then svc_die "PostgreSQL could not be started"; fi
        if [[ $mode == auto && $rc == 0 ]]; then touch "$SVC_RUN/autostop-postgres"; fi
        if [[ $mode == manual ]]; then rm -f "$SVC_RUN/autostop-postgres"; fi
    else
        svc_say "PostgreSQL: using DATABASE_URL from the environment (no local server)"
    fi
    if [[ $SVC_WANT_REDIS == 1 ]]; then
        rc=0
        svc_redis_start || rc=$?
        if ((rc == 1)); then svc_die "Redis could not be started"; fi
        if [[ $mode == auto && $rc == 0 ]]; then touch "$SVC_RUN/autostop-redis"; fi
        if [[ $mode == manual ]]; then rm -f "$SVC_RUN/autostop-redis"; fi
    else
        svc_say "Redis: using REDIS_URL / CELERY_BROKER_URL from the environment (no local server)"
    fi
    if [[ $mode == auto ]]; then
        mkdir -p "$SVC_RUN/users"
        : >"$SVC_RUN/users/$pid"
    fi
    svc_unlock
}

svc_live_users() { # prints live recorded users other than $1, drops dead records
    local f p
    for f in "$SVC_RUN"/users/*; do
        [[ -e "$f" ]] || continue
        p="${f##*/}"
        [[ "$p" == "$1" ]] && continue
        if svc_pid_alive "$p"; then printf '%s ' "$p"; else rm -f "$f"; fi
    done
}

# svc_release [PID]: forget PID as a user; stop what automatic runs started if no one else
# uses it any more.
svc_release() {
    local pid="${1:-$$}" others
    [[ -d "$SVC_RUN" ]] || return 0
    svc_lock || return 1
    rm -f "$SVC_RUN/users/$pid"
    others="$(svc_live_users "$pid")"
    if [[ -n "$others" ]]; then
        if [[ -e "$SVC_RUN/autostop-postgres" || -e "$SVC_RUN/autostop-redis" ]]; then
            svc_say "Leaving PostgreSQL/Redis running: still in use by pid ${others% }"
        fi
    else
        if [[ -e "$SVC_RUN/autostop-redis" ]]; then
            svc_redis_stop || true
            rm -f "$SVC_RUN/autostop-redis"
        fi
        if [[ -e "$SVC_RUN/autostop-postgres" ]]; then
            svc_pg_stop || true
            rm -f "$SVC_RUN/autostop-postgres"
        fi
    fi
    svc_unlock
}

svc_stop_all() {
    local others=""
    if [[ -d "$SVC_RUN" ]]; then
        svc_lock || return 1
        others="$(svc_live_users "")"
    fi
    [[ -n "$others" ]] && svc_warn "stopping services still in use by pid ${others% }"
    svc_redis_stop || true
    svc_pg_stop || true
    if [[ -d "$SVC_RUN" ]]; then
        rm -f "$SVC_RUN/autostop-postgres" "$SVC_RUN/autostop-redis"
        svc_unlock
    fi
    svc_say "Services stopped"
}

svc_status() {
    local pg="stopped" redis="stopped" users
    if svc_pg_find_bindir >/dev/null && [[ -e "$SVC_LOCAL/postgres" ]]; then
        if (svc_pg_setup_paths >/dev/null 2>&1 && svc_pg_running); then pg="running"; fi
    elif [[ ! -e "$SVC_LOCAL/postgres" ]]; then
        pg="not created yet"
    fi
    if svc_redis_pid >/dev/null; then
        redis="running (pid $(svc_redis_pid))"
    elif svc_redis_ping; then
        redis="another server answers on this port"
    fi
    printf '==> PostgreSQL 127.0.0.1:%s  %s  (data: .local/postgres%s)\n' "$CHORUS_PG_PORT" "$pg" \
        "$([[ -L "$SVC_LOCAL/postgres" ]] && printf ' -> %s' "$(readlink "$SVC_LOCAL/postgres")")"
    printf '==> Redis      127.0.0.1:%s  %s  (data: .local/redis)\n' "$CHORUS_REDIS_PORT" "$redis"
    users="$(svc_live_users "" 2>/dev/null || true)"
    [[ -n "$users" ]] && printf '==> In use by pid %s\n' "${users% }"
    return 0
}

svc_clean() {
    svc_stop_all || return 1
    local target=""
    if [[ -L "$SVC_LOCAL/postgres" ]]; then target="$(readlink -f "$SVC_LOCAL/postgres")"; fi
    if [[ -n "$target" && "$target" == /var/tmp/chorus-*/postgres ]]; then
        svc_say "Removing $(dirname "$target")"
        rm -rf "$(dirname "$target")"
    fi
    if [[ -d "/tmp/chorus-pg-$(svc_path_hash)" ]]; then rm -rf "/tmp/chorus-pg-$(svc_path_hash)"; fi
    svc_say "Removing .local/"
    rm -rf "$SVC_LOCAL" || svc_die "could not remove .local/ (files owned by another user? try as root)"
}

svc_print_env() {
    cat <<EOF
==> Services are up and stay up until 'make services-stop'. Connection settings:
    DATABASE_URL=$DATABASE_URL
    REDIS_URL=$REDIS_URL
    CELERY_BROKER_URL=$CELERY_BROKER_URL
EOF
}

# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------
svc_main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
    start)
        svc_acquire manual || exit 1
        svc_print_env
        ;;
    stop) svc_stop_all ;;
    status) svc_status ;;
    clean) svc_clean ;;
    with)
        [[ "${1:-}" == -- ]] && shift
        (($#)) || svc_die "usage: $0 with CMD [ARG...]" || exit 2
        if [[ -d "$CHORUS_ROOT/.venv/bin" ]]; then
            export VIRTUAL_ENV="$CHORUS_ROOT/.venv"
            export PATH="$CHORUS_ROOT/.venv/bin:$PATH"
        fi
        trap 'trap "" INT TERM PIPE; set +e; svc_release "$$"' EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
        svc_acquire auto "$$" || exit 1
        local rc=0
        "$@" || rc=$?
        exit "$rc"
        ;;
    *)
        sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        [[ -z "$cmd" || "$cmd" == help || "$cmd" == -h || "$cmd" == --help ]] && exit 0
        exit 2
        ;;
    esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    svc_main "$@"
fi
