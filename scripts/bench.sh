#!/usr/bin/env bash
# What does going through the core cost the server, and what do the kernel's UDP offloads
# buy it? Compares, in one run and under the same closed-loop loads from `udp-echo bench`
# on 127.0.0.1, these servers:
#   batched  `udp-echo serve --quiet` (recvmmsg/sendmmsg around the core's Responder: every
#            guard on, counters, the poll(2) loop; GRO in, replies coalesced into GSO
#            trains out, the defaults)
#   simple   `udp-echo serve --quiet --io simple` (the portable path: quinn-udp, one
#            sendmsg per reply train)
#   mmsg     host/cli/examples/mmsg_echo.rs (a bare recvmmsg/sendmmsg loop, no guards, no
#            offloads: one buffer and one reply per datagram)
#   gro      host/cli/examples/gro_echo.rs (the same bare loop with GRO and GSO)
# under two loads:
#   plain    `bench --window W` (4 sockets): one datagram per request, per send and per
#            reply; against batched, simple and mmsg
#   gso      `bench --gso K --window GW` (4 sockets): each socket sends its requests as
#            trains of up to K datagrams per sendmsg and takes replies with GRO; against
#            batched, gro and mmsg (mmsg's kernel splits the trains: the plain ceiling)
#
#   scripts/bench.sh [--duration 2s] [--window 64] [--gso 32] [--gso-window 256]
#                    [--rounds 5] [--oneshot-runs 300] [--keep]
#
# 1. Throughput: --rounds rounds; in each, every (load, server) pair once, in an order
#    rotated from round to round so that machine noise hits all. Per pair the median
#    replies/s and p50/p99 RTT, and the ratios of the medians. In each round the batched
#    server is also loaded by the reference load generator (host/cli/examples/
#    plain_load.rs) with the same load: bench/plain_load says whether `udp-echo bench`
#    loads a server as hard. Wall-clock numbers: compare them within one run only.
# 2. RSS of `udp-echo serve` (batched) under each load: VmHWM from /proc at the end of a
#    round's load, median over the rounds.
# 3. One-shot: `udp-echo send 127.0.0.1:PORT hello` as a whole process vs the least a
#    client can do (host/cli/examples/oneshot_client.rs: bind, connect, send, recv),
#    both against one running `udp-echo serve`, --oneshot-runs runs each, with hyperfine
#    if installed (three alternating batches), else a bash loop alternating the two.
# 4. If valgrind is installed: instructions per datagram under callgrind (deterministic,
#    unlike wall time): batched, simple and mmsg each answer exactly 20000 plain requests
#    (window 8), batched and gro 320000 requests in trains of --gso; minus an idle run of
#    the same server (started, left alone as long, stopped), divided by the datagrams the
#    server reports having received.
# A summary table with every ratio and its goal ends the run.
#
# Sends only to 127.0.0.1. Every server is started here, runs under `timeout`, and is
# stopped by its PID (SIGTERM, then SIGKILL after 20 s); an EXIT trap stops any left.
# --keep keeps the work directory (server logs, callgrind.*.out for callgrind_annotate).
# Env: CARGO_TARGET_DIR (default target/); HYPERFINE (default hyperfine; empty: time the
# one-shot runs with the bash loop even where hyperfine is installed). Takes about two
# minutes with the defaults on a 2-core machine, after the build.
set -euo pipefail

CG_REQUESTS=20000
CG_WINDOW=8
CG_GSO_REQUESTS=320000 # under the GSO load: 10,000 trains of 32
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
gso=32
gso_window=256
rounds=5
oneshot_runs=300
keep=
hyperfine=${HYPERFINE-hyperfine}
while (($#)); do
    case $1 in
        --duration) duration=${2:?--duration needs a value, e.g. 3s}; shift 2 ;;
        --duration=*) duration=${1#*=}; shift ;;
        --window) window=${2:?--window needs a value, e.g. 64}; shift 2 ;;
        --window=*) window=${1#*=}; shift ;;
        --gso) gso=${2:?--gso needs a value, e.g. 32}; shift 2 ;;
        --gso=*) gso=${1#*=}; shift ;;
        --gso-window) gso_window=${2:?--gso-window needs a value, e.g. 256}; shift 2 ;;
        --gso-window=*) gso_window=${1#*=}; shift ;;
        --rounds) rounds=${2:?--rounds needs a value, e.g. 5}; shift 2 ;;
        --rounds=*) rounds=${1#*=}; shift ;;
        --oneshot-runs) oneshot_runs=${2:?--oneshot-runs needs a value, e.g. 300}; shift 2 ;;
        --oneshot-runs=*) oneshot_runs=${1#*=}; shift ;;
        --keep) keep=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
# Bounded: 8 runs x --rounds of --duration must fit a few minutes.
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
for w in "$window" "$gso_window"; do
    if [[ ! $w =~ ^[0-9]+$ ]] || ((w < 1 || w > 1024)); then
        echo "bench: --window/--gso-window $w: use 1..1024" >&2
        exit 2
    fi
done
if [[ ! $gso =~ ^[0-9]+$ ]] || ((gso < 2 || gso > 64)); then
    echo "bench: --gso $gso: use 2..64" >&2
    exit 2
fi
if [[ ! $oneshot_runs =~ ^[0-9]+$ ]] || ((oneshot_runs < 10 || oneshot_runs > 3000)); then
    echo "bench: --oneshot-runs $oneshot_runs: use 10..3000" >&2
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
echo "bench: building release (udp-echo; examples mmsg_echo, gro_echo, plain_load, oneshot_client) in $target_dir" >&2
CARGO_TARGET_DIR=$target_dir cargo build --release --quiet -p udp-echo --bin udp-echo \
    --example mmsg_echo --example gro_echo --example plain_load --example oneshot_client
udp_echo=$target_dir/release/udp-echo
mmsg_echo=$target_dir/release/examples/mmsg_echo
gro_echo=$target_dir/release/examples/gro_echo
plain_load=$target_dir/release/examples/plain_load
oneshot_client=$target_dir/release/examples/oneshot_client
for b in "$udp_echo" "$mmsg_echo" "$gro_echo" "$plain_load" "$oneshot_client"; do
    [[ -x $b ]] || die "built binary $b not found"
done

server_cmd() { # NAME: the server's command line, bound to 127.0.0.1 port 0
    case $1 in
        batched) echo "$udp_echo serve --quiet --bind 127.0.0.1:0" ;;
        simple) echo "$udp_echo serve --quiet --io simple --bind 127.0.0.1:0" ;;
        mmsg) echo "$mmsg_echo 127.0.0.1:0" ;;
        gro) echo "$gro_echo 127.0.0.1:0" ;;
    esac
}
# The (load, server) pairs of the throughput rounds, as LOAD.SERVER.
pairs=(plain.batched plain.simple plain.mmsg gso.batched gso.gro gso.mmsg)
load_args() { # LOAD: udp-echo bench's arguments for it
    case $1 in
        plain) echo "--duration $duration --window $window" ;;
        gso) echo "--duration $duration --window $gso_window --gso $gso" ;;
    esac
}
plain_load_args() { # LOAD: plain_load's arguments after the server (duration window sockets gso)
    case $1 in
        plain) echo "$duration $window 4 1" ;;
        gso) echo "$duration $gso_window 4 $gso" ;;
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

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }

echo "bench: $(nproc) CPUs, $(uname -sr), client and server on 127.0.0.1"

# --- 1. throughput -----------------------------------------------------------------------
echo
echo "== throughput: $ROUNDS rounds x {${pairs[*]}}, 4 sockets"
echo "   plain: bench --duration $duration --window $window; gso: bench --duration $duration --window $gso_window --gso $gso"
declare -A rate p50 p99 lost ref_ratios rss
for load in plain gso; do
    ref_ratios[$load]=
    rss[$load]=
done
for ((round = 1; round <= ROUNDS; round++)); do
    # Rotate who goes first, so a drift in machine load does not favour one pair.
    order=()
    for ((k = 0; k < ${#pairs[@]}; k++)); do
        order+=("${pairs[$(((k + round - 1) % ${#pairs[@]}))]}")
    done
    for pair in "${order[@]}"; do
        load=${pair%%.*}
        name=${pair#*.}
        log=$work/$pair.$round.log
        j=$work/$pair.$round.json
        read -r -a cmd <<<"$(server_cmd "$name")"
        start_server "$log" "${cmd[@]}"
        read -r -a largs <<<"$(load_args "$load")"
        bench "$j" "${largs[@]}"
        if [[ $name == batched ]]; then
            # Peak resident memory of the loaded server, then the reference load generator
            # against the same server with the same load.
            rss[$load]+="$(awk '/^VmHWM:/ { print $2 }' "/proc/$server_pid/status") "
            read -r -a pargs <<<"$(plain_load_args "$load")"
            ref_out=$work/ref.$load.$round.json
            if ! timeout 90 "$plain_load" "127.0.0.1:$server_port" "${pargs[@]}" \
                >"$ref_out" 2>"$ref_out.err"; then
                cat "$ref_out.err" >&2
                die "plain_load failed"
            fi
            ref=$(json_num "$ref_out" replies_per_s)
            ref_ratios[$load]+="$(ratio "$(json_num "$j" replies_per_s)" "$ref") "
            printf '  round %d  %-5s %-12s %9.0f replies/s  (the reference load generator against batched)\n' \
                "$round" "$load" plain_load "$ref"
        fi
        stop_server "$log"
        rate[$pair.$round]=$(json_num "$j" replies_per_s)
        p50[$pair.$round]=$(json_num "$j" p50)
        p99[$pair.$round]=$(json_num "$j" p99)
        lost[$pair.$round]=$(json_num "$j" lost)
        printf '  round %d  %-5s %-12s %9.0f replies/s  p50 %s ms  p99 %s ms  (sent %s, lost %s, ignored %s; server, plain_load included for batched: %s)\n' \
            "$round" "$load" "$name" "${rate[$pair.$round]}" "${p50[$pair.$round]}" "${p99[$pair.$round]}" \
            "$(json_num "$j" sent)" "${lost[$pair.$round]}" "$(json_num "$j" ignored)" \
            "$(grep -o 'received [0-9]*.*' "$log" | tail -n1 || true)"
    done
done
echo
printf '  %-5s %-9s %14s %12s %12s %10s\n' load server "replies/s" "p50 RTT" "p99 RTT" "lost (sum)"
declare -A med
for pair in "${pairs[@]}"; do
    med[$pair]=$(for r in $(seq "$ROUNDS"); do echo "${rate[$pair.$r]}"; done | median)
    m50=$(for r in $(seq "$ROUNDS"); do echo "${p50[$pair.$r]}"; done | median)
    m99=$(for r in $(seq "$ROUNDS"); do echo "${p99[$pair.$r]}"; done | median)
    lsum=$(for r in $(seq "$ROUNDS"); do echo "${lost[$pair.$r]}"; done | awk '{ s += $1 } END { print s + 0 }')
    printf '  %-5s %-9s %14.0f %9.3f ms %9.3f ms %10s\n' "${pair%%.*}" "${pair#*.}" "${med[$pair]}" "$m50" "$m99" "$lsum"
done
paired() { # A B: the per-round ratios A/B (same round, alternating order), and their median
    local r list=
    for r in $(seq "$ROUNDS"); do list+="$(ratio "${rate[$1.$r]}" "${rate[$2.$r]}") "; done
    # shellcheck disable=SC2086 # a word list
    echo "$(printf '%s\n' $list | median | awk '{ printf "%.3f", $1 }') (rounds: $list)"
}
paired_plain=$(paired plain.batched plain.mmsg)
paired_gso=$(paired gso.batched gso.gro)
printf '  per-round serve/mmsg_echo (plain): %s\n' "$paired_plain"
printf '  per-round serve/gro_echo (gso):    %s\n' "$paired_gso"
declare -A med_ref_ratio med_rss
for load in plain gso; do
    # shellcheck disable=SC2086 # word lists
    med_ref_ratio[$load]=$(printf '%s\n' ${ref_ratios[$load]} | median | awk '{ printf "%.3f", $1 }')
    # shellcheck disable=SC2086
    med_rss[$load]=$(printf '%s\n' ${rss[$load]} | median)
    printf '  bench/plain_load (%s load) against the batched server, rounds: %s\n' "$load" "${ref_ratios[$load]}"
    printf '  RSS of udp-echo serve (batched) under the %s load, peak per round: %s KiB\n' "$load" "${rss[$load]}"
done
echo "  (medians of $ROUNDS runs each; the load generator shares the CPUs with the server)"

# --- 2. one-shot ------------------------------------------------------------------------
echo
echo "== one-shot: \`udp-echo send 127.0.0.1:PORT hello\` vs oneshot_client, whole processes, $oneshot_runs runs each"
log=$work/oneshot.server.log
read -r -a cmd <<<"$(server_cmd batched)"
start_server "$log" "${cmd[@]}"
send_cmd=("$udp_echo" send "127.0.0.1:$server_port" hello)
min_cmd=("$oneshot_client" "127.0.0.1:$server_port" hello)
# Both must print the same reply before they are timed.
want='Your data was 5 bytes'
for c in send_cmd min_cmd; do
    declare -n argv=$c
    got=$(timeout 10 "${argv[@]}" 2>/dev/null) || die "${argv[*]} failed"
    [[ $got == "$want" ]] || die "${argv[*]} printed '$got', not '$want'"
    unset -n argv
done
oneshot_tool=
if [[ -n $hyperfine ]] && command -v "$hyperfine" >/dev/null; then
    oneshot_tool="hyperfine -N, 3 alternating batches, medians over all runs"
    # Three batches, the order swapped each time (hyperfine runs one command's runs, then
    # the other's); the medians are taken over the runs of all batches.
    per=$(((oneshot_runs + 2) / 3))
    for b in 1 2 3; do
        a=${send_cmd[*]} m=${min_cmd[*]}
        if ((b % 2 == 0)); then first=$m second=$a; else first=$a second=$m; fi
        timeout 120 "$hyperfine" -N --style none --warmup 10 --runs "$per" \
            --export-json "$work/oneshot.$b.json" "$first" "$second" >"$work/oneshot.$b.out" 2>&1 ||
            { cat "$work/oneshot.$b.out" >&2; die "hyperfine failed"; }
    done
    times_of() { # COMMAND: its run times in ms over the three batches, one a line
        python3 - "$1" "$work"/oneshot.{1,2,3}.json <<'EOF'
import json, sys
for f in sys.argv[2:]:
    for r in json.load(open(f))["results"]:
        if r["command"] == sys.argv[1]:
            for t in r["times"]:
                print(f"{t * 1000:.4f}")
EOF
    }
    times_of "${send_cmd[*]}" >"$work/oneshot.send.ms"
    times_of "${min_cmd[*]}" >"$work/oneshot.min.ms"
else
    oneshot_tool="bash loop, alternating, medians"
    # Timed with bash's own clock (no fork around the command); both commands bound
    # themselves (send gives up at 3.1 s, oneshot_client waits 1 s), and a round of all
    # the runs is bounded by 60 s.
    deadline=$((SECONDS + 60))
    send_ms=() min_ms=()
    for ((i = 0; i < oneshot_runs && SECONDS < deadline; i++)); do
        for c in send min; do
            if [[ $c == send ]]; then argv=("${send_cmd[@]}"); else argv=("${min_cmd[@]}"); fi
            t0=${EPOCHREALTIME/[.,]/}
            "${argv[@]}" >/dev/null 2>&1 || die "${argv[*]} failed"
            t1=${EPOCHREALTIME/[.,]/}
            if [[ $c == send ]]; then send_ms+=("$((t1 - t0))"); else min_ms+=("$((t1 - t0))"); fi
        done
    done
    printf '%s\n' "${send_ms[@]}" | awk '{ printf "%.4f\n", $1 / 1000 }' >"$work/oneshot.send.ms"
    printf '%s\n' "${min_ms[@]}" | awk '{ printf "%.4f\n", $1 / 1000 }' >"$work/oneshot.min.ms"
fi
stop_server "$log"
stats() { # FILE of ms: "median mean min n"
    sort -g "$1" | awk '{ v[NR] = $1; s += $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.3f %.3f %.3f %d", m, s / NR, v[1], NR }'
}
read -r send_med send_mean send_min send_n <<<"$(stats "$work/oneshot.send.ms")"
read -r min_med min_mean min_min min_n <<<"$(stats "$work/oneshot.min.ms")"
printf '  %-16s median %7.3f ms  mean %7.3f ms  min %7.3f ms  (%d runs)\n' \
    "udp-echo send" "$send_med" "$send_mean" "$send_min" "$send_n" \
    oneshot_client "$min_med" "$min_mean" "$min_min" "$min_n"
oneshot_ratio=$(ratio "$send_med" "$min_med")
echo "  ($oneshot_tool; ratio of means $(ratio "$send_mean" "$min_mean"))"

# --- 3. instructions per datagram ---------------------------------------------------------
echo
echo "== instructions per datagram (callgrind), minus an idle run: plain load $CG_REQUESTS requests, --window $CG_WINDOW;"
echo "   gso load $CG_GSO_REQUESTS requests, --gso $gso --window $gso_window"
cg_pairs=(plain.batched plain.simple plain.mmsg gso.batched gso.gro)
declare -A per
if ! command -v valgrind >/dev/null; then
    echo "  skipped: valgrind is not installed (Debian/Ubuntu: apt-get install valgrind)"
else
    callgrind_total() { # OUT: total instructions (Ir) of a callgrind out file
        local line
        line=$(grep -m1 -E '^(summary|totals):' "$1") || die "no summary/totals line in $1"
        echo "$line" | awk '{ print $2 }'
    }
    for pair in "${cg_pairs[@]}"; do
        load=${pair%%.*}
        name=${pair#*.}
        read -r -a cmd <<<"$(server_cmd "$name")"
        if [[ $load == plain ]]; then
            largs=(--requests "$CG_REQUESTS" --window "$CG_WINDOW")
        else
            largs=(--requests "$CG_GSO_REQUESTS" --window "$gso_window" --gso "$gso")
        fi
        # Loaded: exactly that many requests, then SIGTERM.
        out=$work/callgrind.$pair.load.out
        log=$work/$pair.cg-load.log
        start_server "$log" valgrind --tool=callgrind -q --log-file="$work/valgrind.$pair.load.log" \
            --callgrind-out-file="$out" "${cmd[@]}"
        t0=$(date +%s%N)
        bench "$work/$pair.cg.json" "${largs[@]}" --duration 60s
        held_ms=$((($(date +%s%N) - t0) / 1000000))
        stop_server "$log"
        got=$(received_by "$log")
        [[ -n $got && $got -gt 0 ]] || die "no received count in $log"
        sent=$(json_num "$work/$pair.cg.json" sent)
        replies=$(json_num "$work/$pair.cg.json" replies)
        # Idle: the same server, started, left alone as long as the loaded one was busy, stopped.
        idle_out=$work/callgrind.$pair.idle.out
        log=$work/$pair.cg-idle.log
        start_server "$log" valgrind --tool=callgrind -q --log-file="$work/valgrind.$pair.idle.log" \
            --callgrind-out-file="$idle_out" "${cmd[@]}"
        sleep "$(awk -v ms="$held_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
        stop_server "$log"
        total=$(callgrind_total "$out")
        idle=$(callgrind_total "$idle_out")
        per[$pair]=$(awk -v l="$total" -v i="$idle" -v n="$got" 'BEGIN { printf "%.0f", (l - i) / n }')
        printf '  %-5s %-9s loaded %12s Ir  idle %11s Ir  datagrams %s (bench sent %s, replies %s, %.1fs)  => %s Ir/datagram\n' \
            "$load" "$name" "$total" "$idle" "$got" "$sent" "$replies" "$(awk -v ms="$held_ms" 'BEGIN { print ms / 1000 }')" \
            "${per[$pair]}"
    done
    echo "  (user-space instructions only: callgrind does not count the kernel's share of each syscall)"
fi

# --- summary ------------------------------------------------------------------------------
echo
echo "== summary ($ROUNDS rounds; replies/s are medians over the rounds, ratios of those medians unless said)"
row() { # WHAT VALUE GOAL: one line; GOAL like ">= 1.0", "<= 4096" or "" (none)
    local verdict=
    if [[ -n $3 && $2 != n/a ]]; then
        if awk -v v="$2" -v op="${3%% *}" -v g="${3#* }" 'BEGIN {
            exit !((op == ">=" && v >= g) || (op == "<=" && v <= g)) }'; then
            verdict=met
        else
            verdict=MISSED
        fi
    fi
    local value=$2
    # Large figures (replies/s, Ir) as integers, not awk's 1.58e+06.
    if [[ $value =~ ^[0-9.e+]+$ ]]; then
        value=$(awk -v v="$value" 'BEGIN { if (v >= 1000) printf "%.0f", v; else print v }')
    fi
    printf '  %-62s %10s   %-9s %s\n' "$1" "$value" "$3" "$verdict"
}
printf '  %-62s %10s   %-9s %s\n' what value goal ""
row "plain: serve (batched) replies/s" "${med[plain.batched]}" ""
row "plain: serve --io simple replies/s" "${med[plain.simple]}" ""
row "plain: bare mmsg_echo replies/s" "${med[plain.mmsg]}" ""
row "plain: serve / mmsg_echo" "$(ratio "${med[plain.batched]}" "${med[plain.mmsg]}")" ">= 1.0"
row "plain: serve / mmsg_echo, median of per-round ratios" "${paired_plain%% *}" ">= 1.0"
row "plain: serve --io simple / mmsg_echo" "$(ratio "${med[plain.simple]}" "${med[plain.mmsg]}")" ""
row "plain: bench / plain_load on serve (batched)" "${med_ref_ratio[plain]}" ">= 0.9"
row "gso $gso: serve (batched) replies/s" "${med[gso.batched]}" ""
row "gso $gso: bare gro_echo replies/s" "${med[gso.gro]}" ""
row "gso $gso: bare mmsg_echo (no offloads) replies/s" "${med[gso.mmsg]}" ""
row "gso $gso: serve / gro_echo" "$(ratio "${med[gso.batched]}" "${med[gso.gro]}")" ">= 0.9"
row "gso $gso: serve / gro_echo, median of per-round ratios" "${paired_gso%% *}" ">= 0.9"
row "gso $gso: serve / plain ceiling (mmsg_echo, plain load)" "$(ratio "${med[gso.batched]}" "${med[plain.mmsg]}")" ">= 10"
row "gso $gso: gro_echo / plain ceiling" "$(ratio "${med[gso.gro]}" "${med[plain.mmsg]}")" ""
row "gso $gso: bench / plain_load on serve (batched)" "${med_ref_ratio[gso]}" ">= 0.9"
row "RSS of serve (VmHWM, KiB), plain load" "${med_rss[plain]}" "<= 4096"
row "RSS of serve (VmHWM, KiB), gso load" "${med_rss[gso]}" "<= 4096"
row "one-shot: udp-echo send median ms" "$send_med" ""
row "one-shot: oneshot_client median ms" "$min_med" ""
row "one-shot: send / oneshot_client (medians)" "$oneshot_ratio" "<= 1.1"
if ((${#per[@]})); then
    row "Ir/datagram, plain, window $CG_WINDOW: serve (batched)" "${per[plain.batched]}" ""
    row "Ir/datagram, plain: serve --io simple" "${per[plain.simple]}" ""
    row "Ir/datagram, plain: mmsg_echo" "${per[plain.mmsg]}" ""
    row "Ir/datagram, plain: serve / mmsg_echo" "$(ratio "${per[plain.batched]}" "${per[plain.mmsg]}")" "<= 1.2"
    row "Ir/datagram, gso $gso: serve (batched)" "${per[gso.batched]}" ""
    row "Ir/datagram, gso $gso: gro_echo" "${per[gso.gro]}" ""
    row "Ir/datagram, gso $gso: serve / gro_echo" "$(ratio "${per[gso.batched]}" "${per[gso.gro]}")" ""
fi
