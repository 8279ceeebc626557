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
