# Shared helpers of .ci/rt-up.sh and .ci/znuny-up.sh (sourced, not run).
# The caller sets NAME (for messages) and PID_FILE (the pid of the server it started).

APT=(apt-get -q -o DPkg::Lock::Timeout=900)

ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(ms); last=$t0
step() {
    # one timing line per set-up step, so CI logs show where the minutes go
    local now; now=$(ms)
    printf '### %-38s %6d ms (total %6d ms)\n' "$1" $((now - last)) $((now - t0))
    last=$now
}
die() { echo "$NAME: $*" >&2; exit 1; }

server_pid() {
    # The pid of the server we started, if it is still alive.
    [ -f "$PID_FILE" ] || return 1
    local pid; pid=$(cat "$PID_FILE")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

stop_server() {
    local pid
    if pid=$(server_pid); then
        # setsid made the server a process-group leader: stop it with its prefork workers.
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
        echo "$NAME: stopped the server (pid $pid)"
    fi
    rm -f "$PID_FILE"
}
