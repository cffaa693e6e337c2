#!/usr/bin/env bash
# What does going through the core cost the server? Compares, in one run and under the same
# closed-loop load from `udp-echo bench` on 127.0.0.1:
#   batched  `udp-echo serve --quiet` (recvmmsg/sendmmsg around the core's Responder: every
#            guard on, counters, the poll(2) loop, the presenter)
#   simple   `udp-echo serve --quiet --io simple` (the core's embedded-nal Server driver,
#            one recvfrom/sendto per datagram: the reference path, as on firmware)
#   mmsg     host/cli/examples/mmsg_echo.rs (a bare recvmmsg/sendmmsg loop, no guards)
#
#   scripts/bench.sh [--duration 2s] [--window 64] [--rounds 5] [--keep]
#
# 1. Throughput: --rounds rounds, servers in a rotating order within each round so that
#    machine noise hits all; per server the median replies/s and p50/p99 RTT, and the
#    ratios of the medians. In each round the batched server is also loaded by the
#    reference load generator (host/cli/examples/plain_load.rs): bench/plain_load says
#    whether `udp-echo bench` loads a server as hard. Wall-clock numbers: compare them
#    within one run only.
# 2. RSS of `udp-echo serve` (batched) under that load: VmHWM from /proc at the end of a
#    round's load, median over the rounds.
# 3. If valgrind is installed: instructions per datagram under callgrind (deterministic,
#    unlike wall time): each server answers exactly 20000 requests (window 8), minus an
#    idle run of the same server (started, left alone as long, stopped), divided by the
#    datagrams the server reports having received.
#
# Sends only to 127.0.0.1. Every server is started here, runs under `timeout`, and is
# stopped by its PID (SIGTERM, then SIGKILL after 20 s); an EXIT trap stops any left.
# --keep keeps the work directory (server logs, callgrind.*.out for callgrind_annotate).
# Env: CARGO_TARGET_DIR (default target/). Takes about two minutes with the defaults.
set -euo pipefail

CG_REQUESTS=20000
CG_WINDOW=8
SERVER_LIFETIME=150 # seconds; a safety net, servers are stopped long before
STARTUP_WAIT=30     # seconds for `listening on` (valgrind starts slowly)
STOP_WAIT=20        # seconds from SIGTERM to SIGKILL

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}
die() {
    echo "bench: $*" >&2
    exit 1
}

duration=2s
window=64
rounds=5
keep=
while (($#)); do
    case $1 in
        --duration) duration=${2:?--duration needs a value, e.g. 3s}; shift 2 ;;
        --duration=*) duration=${1#*=}; shift ;;
        --window) window=${2:?--window needs a value, e.g. 64}; shift 2 ;;
        --window=*) window=${1#*=}; shift ;;
        --rounds) rounds=${2:?--rounds needs a value, e.g. 5}; shift 2 ;;
        --rounds=*) rounds=${1#*=}; shift ;;
        --keep) keep=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
# Bounded: 4 runs x --rounds of --duration must fit a few minutes.
if [[ ! $duration =~ ^([0-9]+)(\.[0-9]+)?(ms|s)$ ]]; then
    echo "bench: --duration $duration: write e.g. 3s, 1.5s or 500ms" >&2
    exit 2
fi
duration_ms=$(awk -v d="$duration" 'BEGIN {
    v = d + 0; if (d ~ /ms$/) print int(v); else print int(v * 1000) }')
if ((duration_ms < 100 || duration_ms > 10000)); then
    echo "bench: --duration $duration: use 100ms..10s" >&2
    exit 2
fi
if [[ ! $rounds =~ ^[0-9]+$ ]] || ((rounds < 1 || rounds > 15)); then
    echo "bench: --rounds $rounds: use 1..15" >&2
    exit 2
fi
ROUNDS=$rounds
if [[ ! $window =~ ^[0-9]+$ ]] || ((window < 1 || window > 1024)); then
    echo "bench: --window $window: use 1..1024" >&2
    exit 2
fi

# Resolve CARGO_TARGET_DIR against the caller's cwd before moving to the workspace root.
target_dir=${CARGO_TARGET_DIR:-}
if [[ -n $target_dir && $target_dir != /* ]]; then target_dir=$PWD/$target_dir; fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target_dir=${target_dir:-$PWD/target}

# --- processes -----------------------------------------------------------------------
pids=()
work=
alive() { # PID: running (a zombie waiting to be reaped does not count)
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state=$(sed -e 's/.*) //' -e 's/ .*//' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $state != Z ]]
}
stopped_status=
stop_pid() { # PID: SIGTERM, wait up to STOP_WAIT s, then SIGKILL; reaps; sets stopped_status
    local pid=$1 deadline=$((SECONDS + STOP_WAIT)) status=0
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid"; do
        if ((SECONDS >= deadline)); then
            echo "bench: PID $pid ignored SIGTERM for ${STOP_WAIT}s, sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.02
    done
    wait "$pid" 2>/dev/null || status=$?
    local left=() p
    for p in "${pids[@]}"; do [[ $p == "$pid" ]] || left+=("$p"); done
    pids=("${left[@]}")
    stopped_status=$status
}
cleanup() {
    local status=$? pid
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        if alive "$pid"; then stop_pid "$pid"; fi
    done
    if [[ -n $work ]]; then
        if [[ -n $keep ]]; then
            echo "bench: kept $work" >&2
        else
            rm -rf -- "$work"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

work=$(mktemp -d "${TMPDIR:-/tmp}/udp-echo-bench.XXXXXX")

# --- build -----------------------------------------------------------------------------
echo "bench: building release (udp-echo, examples mmsg_echo, plain_load) in $target_dir" >&2
CARGO_TARGET_DIR=$target_dir cargo build --release --quiet -p udp-echo \
    --bin udp-echo --example mmsg_echo --example plain_load
udp_echo=$target_dir/release/udp-echo
mmsg_echo=$target_dir/release/examples/mmsg_echo
plain_load=$target_dir/release/examples/plain_load
[[ -x $udp_echo && -x $mmsg_echo && -x $plain_load ]] ||
    die "built binaries not found under $target_dir/release"

names=(batched simple mmsg)
server_cmd() { # NAME: the server's command line, bound to 127.0.0.1 port 0
    case $1 in
        batched) echo "$udp_echo serve --quiet --bind 127.0.0.1:0" ;;
        simple) echo "$udp_echo serve --quiet --io simple --bind 127.0.0.1:0" ;;
        mmsg) echo "$mmsg_echo 127.0.0.1:0" ;;
    esac
}

listening_line() { # LOG: the first complete `listening on` line (stderr is unbuffered and
    # written in pieces: a partial last line must not be taken for the address)
    local l
    while IFS= read -r l; do # read fails on a last line without its newline
        if [[ $l == 'listening on '* ]]; then
            printf '%s\n' "$l"
            return 0
        fi
    done <"$1"
    return 1
}
server_pid=
server_port=
start_server() { # LOG COMMAND...: starts it, sets server_pid and server_port
    local log=$1 line= deadline=$((SECONDS + STARTUP_WAIT))
    shift
    : >"$log" # exists before the background job's redirection creates it
    timeout --signal=TERM --kill-after=5 "$SERVER_LIFETIME" "$@" </dev/null >/dev/null 2>"$log" &
    server_pid=$!
    pids+=("$server_pid")
    while :; do
        line=$(listening_line "$log" || true)
        [[ -z $line ]] || break
        if ! alive "$server_pid"; then
            cat "$log" >&2
            die "the server exited before listening: $*"
        fi
        ((SECONDS < deadline)) || die "no \`listening on\` from the server within ${STARTUP_WAIT}s: $*"
        sleep 0.02
    done
    local addr=${line#listening on }
    [[ $addr =~ ^127\.0\.0\.1:[0-9]+$ ]] || die "the server listens on $addr, not on 127.0.0.1"
    server_port=${addr##*:}
}
stop_server() { # LOG: stops server_pid, checks its exit status
    stop_pid "$server_pid"
    if [[ $stopped_status != 0 ]]; then
        cat "$1" >&2
        die "the server (PID $server_pid) exited with status $stopped_status"
    fi
}

json_num() { # FILE KEY: the first "KEY":value in a one-line JSON object
    grep -o "\"$2\":[^,}]*" "$1" | head -n1 | cut -d: -f2
}
received_by() { # LOG: the datagrams the server says it received (from its exit summary)
    grep -o 'received [0-9]*' "$1" | tail -n1 | cut -d' ' -f2
}
bench() { # OUT ARGS...: udp-echo bench against server_port, JSON report to OUT
    local out=$1
    shift
    if ! timeout 90 "$udp_echo" bench --server "127.0.0.1:$server_port" --json "$@" \
        >"$out" 2>"$out.err"; then
        cat "$out.err" >&2
        die "udp-echo bench failed against 127.0.0.1:$server_port"
    fi
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "bench: $(nproc) CPUs, $(uname -sr), client and server on 127.0.0.1"

# --- 1. throughput -----------------------------------------------------------------------
echo
echo "== throughput: $ROUNDS rounds x {${names[*]}}, bench --duration $duration --window $window (4 sockets)"
declare -A rate p50 p99
ref_ratios=()
rss=()
for ((round = 1; round <= ROUNDS; round++)); do
    # Rotate who goes first, so a drift in machine load does not favour one server.
    order=()
    for ((k = 0; k < ${#names[@]}; k++)); do
        order+=("${names[$(((k + round - 1) % ${#names[@]}))]}")
    done
    for name in "${order[@]}"; do
        log=$work/$name.$round.log
        read -r -a cmd <<<"$(server_cmd "$name")"
        start_server "$log" "${cmd[@]}"
        bench "$work/$name.$round.json" --duration "$duration" --window "$window"
        j=$work/$name.$round.json
        if [[ $name == batched ]]; then
            # Peak resident memory of the loaded server, then the reference load generator
            # against the same server.
            rss+=("$(awk '/^VmHWM:/ { print $2 }' "/proc/$server_pid/status")")
            if ! timeout 90 "$plain_load" "127.0.0.1:$server_port" "$duration" "$window" 4 \
                >"$work/ref.$round.json" 2>"$work/ref.$round.err"; then
                cat "$work/ref.$round.err" >&2
                die "plain_load failed"
            fi
            ref=$(json_num "$work/ref.$round.json" replies_per_s)
            ref_ratios+=("$(awk -v a="$(json_num "$j" replies_per_s)" -v b="$ref" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')")
            printf '  round %d  %-9s %9.0f replies/s  (reference load generator against it: %.0f replies/s)\n' \
                "$round" plain_load "$ref" "$ref"
        fi
        stop_server "$log"
        rate[$name.$round]=$(json_num "$j" replies_per_s)
        p50[$name.$round]=$(json_num "$j" p50)
        p99[$name.$round]=$(json_num "$j" p99)
        printf '  round %d  %-9s %9.0f replies/s  p50 %s ms  p99 %s ms  (sent %s, lost %s)\n' \
            "$round" "$name" "${rate[$name.$round]}" "${p50[$name.$round]}" "${p99[$name.$round]}" \
            "$(json_num "$j" sent)" "$(json_num "$j" lost)"
    done
done
echo
printf '  %-9s %14s %12s %12s\n' server "replies/s" "p50 RTT" "p99 RTT"
declare -A med
for name in "${names[@]}"; do
    med[$name]=$(for r in $(seq "$ROUNDS"); do echo "${rate[$name.$r]}"; done | median)
    m50=$(for r in $(seq "$ROUNDS"); do echo "${p50[$name.$r]}"; done | median)
    m99=$(for r in $(seq "$ROUNDS"); do echo "${p99[$name.$r]}"; done | median)
    printf '  %-9s %14.0f %9.3f ms %9.3f ms\n' "$name" "${med[$name]}" "$m50" "$m99"
done
awk -v a="${med[batched]}" -v b="${med[mmsg]}" -v c="${med[simple]}" 'BEGIN {
    printf "  ratio batched/mmsg (median replies/s): %.3f   (goal >= 1.0)\n", (b > 0 ? a / b : 0)
    printf "  ratio simple/mmsg  (median replies/s): %.3f\n", (b > 0 ? c / b : 0)
    printf "  ratio batched/simple:                  %.3f\n", (c > 0 ? a / c : 0) }'
printf '  bench/plain_load against the batched server, median of %d rounds: %s   (goal >= 0.9; rounds: %s)\n' \
    "$ROUNDS" "$(printf '%s\n' "${ref_ratios[@]}" | median)" "${ref_ratios[*]}"
printf '  RSS of udp-echo serve (batched) under load: median peak %s KiB (rounds: %s KiB)   (goal <= 3 MB)\n' \
    "$(printf '%s\n' "${rss[@]}" | median)" "${rss[*]}"
echo "  (medians of $ROUNDS runs each; the load generator shares the CPUs with the server)"

# --- 2. instructions per datagram ---------------------------------------------------------
echo
echo "== instructions per datagram (callgrind): $CG_REQUESTS requests, --window $CG_WINDOW, minus an idle run"
if ! command -v valgrind >/dev/null; then
    echo "  skipped: valgrind is not installed (Debian/Ubuntu: apt-get install valgrind)"
    exit 0
fi
callgrind_total() { # OUT: total instructions (Ir) of a callgrind out file
    local line
    line=$(grep -m1 -E '^(summary|totals):' "$1") || die "no summary/totals line in $1"
    echo "$line" | awk '{ print $2 }'
}
declare -A per
for name in "${names[@]}"; do
    read -r -a cmd <<<"$(server_cmd "$name")"
    # Loaded: exactly CG_REQUESTS requests, then SIGTERM.
    out=$work/callgrind.$name.load.out
    log=$work/$name.cg-load.log
    start_server "$log" valgrind --tool=callgrind -q --log-file="$work/valgrind.$name.load.log" \
        --callgrind-out-file="$out" "${cmd[@]}"
    t0=$(date +%s%N)
    bench "$work/$name.cg.json" --requests "$CG_REQUESTS" --window "$CG_WINDOW" --duration 60s
    held_ms=$((($(date +%s%N) - t0) / 1000000))
    stop_server "$log"
    got=$(received_by "$log")
    [[ -n $got && $got -gt 0 ]] || die "no received count in $log"
    sent=$(json_num "$work/$name.cg.json" sent)
    replies=$(json_num "$work/$name.cg.json" replies)
    # Idle: the same server, started, left alone as long as the loaded one was busy, stopped.
    idle_out=$work/callgrind.$name.idle.out
    log=$work/$name.cg-idle.log
    start_server "$log" valgrind --tool=callgrind -q --log-file="$work/valgrind.$name.idle.log" \
        --callgrind-out-file="$idle_out" "${cmd[@]}"
    sleep "$(awk -v ms="$held_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
    stop_server "$log"
    load=$(callgrind_total "$out")
    idle=$(callgrind_total "$idle_out")
    per[$name]=$(awk -v l="$load" -v i="$idle" -v n="$got" 'BEGIN { printf "%.0f", (l - i) / n }')
    printf '  %-9s loaded %12s Ir  idle %11s Ir  datagrams %s (bench sent %s, replies %s, %.1fs)  => %s Ir/datagram\n' \
        "$name" "$load" "$idle" "$got" "$sent" "$replies" "$(awk -v ms="$held_ms" 'BEGIN { print ms / 1000 }')" \
        "${per[$name]}"
done
awk -v a="${per[batched]}" -v b="${per[mmsg]}" -v c="${per[simple]}" 'BEGIN {
    printf "  ratio batched/mmsg (instructions per datagram): %.2f   (goal <= 1.2)\n", (b > 0 ? a / b : 0)
    printf "  ratio simple/mmsg  (instructions per datagram): %.2f\n", (b > 0 ? c / b : 0) }'
echo "  (user-space instructions only: callgrind does not count the kernel's share of each syscall)"
