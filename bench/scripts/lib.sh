# Helpers the benchmark scripts source (`. "$(dirname "$0")/lib.sh"`, before they cd).

# Waits up to 10 s until something accepts TCP connections on 127.0.0.1:PORT.
wait_port() {
    for _ in $(seq 1 100); do
        (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
        sleep 0.1
    done
}

# CPU time (user + system) a process or thread has used, in clock ticks (getconf CLK_TCK):
# cpu_ticks PID, or cpu_ticks /proc/PID/task/TID.
cpu_ticks() {
    local path=$1
    case $path in /*) ;; *) path=/proc/$path ;; esac
    awk '{print $14+$15}' "$path/stat"
}

# Starts ${SERVER:-target/release/ringkv-server} --shards 2 --log warn on a new temporary data
# dir, listening on 127.0.0.1:PORT, with any further flags; returns once shard 1's port
# accepts. Sets SPID and DDIR. stop_server kills it (SIGKILL) and removes the data dir.
# start_server PORT [flags...]
start_server() {
    local port=$1; shift
    DDIR=$(mktemp -d)
    "${SERVER:-target/release/ringkv-server}" --data-dir "$DDIR" --listen "127.0.0.1:$port" \
        --shards 2 --log warn "$@" &
    SPID=$!
    wait_port $((port + 2))
}

stop_server() {
    kill -9 "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    rm -rf "$DDIR"
}
