#!/usr/bin/env bash
# The polled and the async network firmware side by side under QEMU (user networking, no
# root), in one run, rounds alternating between the images:
#
#   first reply   time from QEMU's start (the script's `QEMU pid` line) to the first reply
#                 to `udp-echo ping -c 1 -W 50ms`, probed every 20 ms
#   idle CPU      QEMU's CPU time (utime + stime) over IDLE_S seconds while nothing talks
#                 to the firmware, in % of one core
#   ping RTT      `udp-echo ping -c PINGS -i 20ms` through slirp: min/avg/max, in ms
#
# Then the medians over ROUNDS and the ratios async/polled, and each image's footprint.
#
#   scripts/bench-firmware.sh            5 rounds, 100 pings, 10 s idle
#   ROUNDS=3 PINGS=50 IDLE_S=5 scripts/bench-firmware.sh
#
# Traffic goes only to 127.0.0.1 (QEMU's hostfwd). Every wait is bounded; only the QEMUs
# this script starts are stopped, by their PIDs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds=${ROUNDS:-5}
pings=${PINGS:-100}
idle_s=${IDLE_S:-10}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
export CARGO_TARGET_DIR=$target_dir

cargo build -q --release -p udp-echo
udp_echo=$target_dir/release/udp-echo
declare -A footprint
for image in polled async; do
    flag=()
    [[ $image == async ]] && flag=(--async)
    footprint[$image]=$(bash scripts/qemu-net.sh "${flag[@]}" build 2>&1 >/dev/null | grep '^footprint:')
done

free_port() {
    python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

now_ms() { date +%s%3N; }

# cpu_ticks PID: utime + stime of PID, in clock ticks.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# One round for one image: prints "first_reply_ms idle_cpu_percent min avg max".
measure() {
    local image=$1 port log serve_pid qemu_pid start first cpu0 cpu1 flag=()
    [[ $image == async ]] && flag=(--async)
    port=$(free_port)
    log=$(mktemp)
    bash scripts/qemu-net.sh "${flag[@]}" serve "$port" >/dev/null 2>"$log" &
    serve_pid=$!
    # The clock starts when QEMU does (the script says its PID right after starting it),
    # not before the build the script may run first.
    for _ in $(seq 3000); do # at most 5 minutes of building
        grep -q '^qemu-net: QEMU pid ' "$log" && break
        sleep 0.1
    done
    start=$(now_ms)
    first=
    for _ in $(seq 500); do # at most 10 s
        if "$udp_echo" ping "127.0.0.1:$port" -c 1 -W 50ms -q >/dev/null 2>&1; then
            first=$(($(now_ms) - start))
            break
        fi
        sleep 0.02
    done
    qemu_pid=$(sed -n 's/^qemu-net: QEMU pid \([0-9]*\)$/\1/p' "$log" | head -n 1)
    if [[ -z $first || -z $qemu_pid ]]; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
        echo "bench-firmware: the $image firmware never answered:" >&2
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    cpu0=$(cpu_ticks "$qemu_pid")
    sleep "$idle_s"
    cpu1=$(cpu_ticks "$qemu_pid")
    local hz
    hz=$(getconf CLK_TCK)
    local idle
    idle=$(awk -v d=$((cpu1 - cpu0)) -v hz="$hz" -v s="$idle_s" 'BEGIN {printf "%.2f", 100 * d / hz / s}')
    local rtt
    rtt=$("$udp_echo" ping "127.0.0.1:$port" -c "$pings" -i 20ms -q --json -W 1s |
        python3 -c 'import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e.get("event") == "summary":
        r = e["rtt_ms"]
        print(r["min"], r["avg"], r["max"])')
    kill -TERM "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
    rm -f "$log"
    echo "$first $idle $rtt"
}

declare -A rows
for round in $(seq "$rounds"); do
    for image in polled async; do
        row=$(measure "$image")
        rows[$image]+="$row"$'\n'
        echo "round $round $image: first reply ${row%% *} ms; idle CPU, ping min/avg/max: ${row#* }" >&2
    done
done

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
column() { printf '%s' "${rows[$1]}" | awk -v c="$2" 'NF {print $c}' | median; }

echo
echo "| figure (median of $rounds rounds) | polled | async | async/polled |"
echo "| --- | ---: | ---: | ---: |"
for spec in "first reply after QEMU's start, ms:1" "QEMU CPU while idle, % of a core:2" \
    "ping RTT min, ms:3" "ping RTT avg, ms:4" "ping RTT max, ms:5"; do
    name=${spec%:*}
    c=${spec##*:}
    p=$(column polled "$c")
    a=$(column async "$c")
    ratio=$(awk -v a="$a" -v p="$p" 'BEGIN {if (p > 0) printf "%.2f", a / p; else print "-"}')
    echo "| $name | $p | $a | $ratio |"
done
echo
for image in polled async; do
    echo "$image: ${footprint[$image]}"
done
