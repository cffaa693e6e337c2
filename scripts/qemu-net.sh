#!/usr/bin/env bash
# The network firmware (firmware-example/net-firmware/) on QEMU mps2-an386 with
# its LAN9118 NIC on QEMU user networking (no root needed):
#
#   scripts/qemu-net.sh serve HOSTPORT          the firmware answers on UDP 6666; this
#                                               machine's 127.0.0.1:HOSTPORT/udp leads there.
#                                               Runs until SIGINT/SIGTERM (QEMU stops too).
#   scripts/qemu-net.sh client HOST:PORT MSG…   the firmware sends MSG to HOST:PORT (from
#                                               inside, this machine is 10.0.2.2) with the
#                                               core's retry schedule; exits 0 on a reply,
#                                               1 when it gave up, 124 on timeout.
#   scripts/qemu-net.sh build                   builds and prints the ELF's path and size.
#
# Options before the command, in any order: --async runs the async firmware instead
# (firmware-example/async-firmware/: embassy-net, an interrupt-driven LAN9118, a tick-less
# timer; the same commands, output and exit statuses); --tap IFACE uses an existing TAP
# device instead of slirp (root; give IFACE 10.0.2.2/24, the firmware is 10.0.2.15; serve
# takes no HOSTPORT).
# The decoded defmt log goes to stdout, the script's own lines to stderr.
#
# Installs nothing. Needs the thumbv7em-none-eabihf target and qemu-system-arm; optional:
# defmt-print (decoding), arm-none-eabi-size (sizes).
# Env: CARGO_TARGET_DIR (default target/), QEMU_TIMEOUT seconds for client (default 30),
# DEFMT_LOG (at build time).
set -euo pipefail

script=qemu-net
# shellcheck source=scripts/firmware-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/firmware-common.sh"

usage() {
    sed -n '2,/^# Env/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
fail() {
    echo "$script: $*" >&2
    exit 2
}

tap=
package=udp-echo-net-firmware
image=net-firmware
while [[ ${1:-} == --* ]]; do
    case $1 in
    --tap)
        [[ $# -ge 2 && -n $2 ]] || fail "--tap needs an interface name"
        tap=$2
        shift 2
        ;;
    --async)
        package=udp-echo-async-firmware
        image=async-firmware
        shift
        ;;
    *) usage ;;
    esac
done
command=${1:-}
[[ -n $command ]] || usage
shift

# Validate before a minute of compiling.
case $command in
serve)
    if [[ -z $tap ]]; then
        [[ $# -eq 1 ]] || fail "usage: $script serve HOSTPORT (e.g. 16666)"
        port=$1
        [[ $port =~ ^[0-9]+$ ]] && ((port >= 1 && port <= 65535)) ||
            fail "HOSTPORT must be a port number from 1 to 65535, not '$port'"
    else
        [[ $# -eq 0 ]] || fail "with --tap, serve takes no HOSTPORT: reach 10.0.2.15:6666"
    fi
    ;;
client)
    [[ $# -ge 1 ]] || fail "usage: $script client HOST:PORT MESSAGE…"
    server=$1
    shift
    [[ $server =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+:[0-9]+$ ]] ||
        fail "HOST:PORT must be an IPv4 address and a port, e.g. 10.0.2.2:6666, not '$server'"
    if [[ -z $tap && ($server == 127.* || $server == 10.0.2.15:*) ]]; then
        fail "from inside QEMU this machine is 10.0.2.2: use 10.0.2.2:${server##*:}"
    fi
    message="$*"
    ;;
build) [[ $# -eq 0 ]] || usage ;;
*) usage ;;
esac

firmware_setup
firmware_build "$package" "$image"
firmware_size >&2
if [[ $command == client ]]; then
    # The firmware reads its command line (semihosting: the kernel's path, a space, then
    # -append's text) into 1,024 bytes with the terminating NUL: say so before booting
    # rather than let it fail with NoCmdline.
    cmdline_max=1023
    room=$((cmdline_max - ${#bin} - 1 - ${#server} - 8)) # "client " and the space after HOST:PORT
    message_bytes=$(printf '%s' "$message" | LC_ALL=C wc -c)
    if ((message_bytes > room)); then
        fail "the message is $message_bytes bytes; the boot command line carries at most $room here (1,023 bytes in all, with the firmware's path $bin): shorten it"
    fi
fi
if [[ $command == build ]]; then
    echo "$bin"
    exit 0
fi

if [[ -n $tap ]]; then
    nic=tap,model=lan9118,ifname=$tap,script=no,downscript=no
elif [[ $command == serve ]]; then
    # 127.0.0.1 only: without the address QEMU would listen on every interface.
    nic=user,model=lan9118,hostfwd=udp:127.0.0.1:$port-:6666
else
    nic=user,model=lan9118
fi
qemu=(qemu-system-arm -machine mps2-an386 -nographic
      -semihosting-config enable=on,target=native -nic "$nic" -kernel "$bin")
decode=(cat)
if command -v defmt-print >/dev/null; then
    decode=(defmt-print -e "$bin")
else
    echo "$script: defmt-print not found, showing raw defmt frames (cargo install defmt-print --locked)" >&2
fi

if [[ $command == client ]]; then
    timeout_s=${QEMU_TIMEOUT:-30}
    echo "$script: timeout $timeout_s ${qemu[*]} -append 'client $server $message'" >&2
    set +e
    # stdin from /dev/null: -nographic would otherwise grab (and re-mode) a terminal.
    timeout "$timeout_s" "${qemu[@]}" -append "client $server $message" </dev/null | "${decode[@]}"
    status=${PIPESTATUS[0]}
    set -e
    case $status in
        0) echo "$script: reply received (exit 0)" >&2 ;;
        1) echo "$script: no reply, or the firmware failed (exit 1)" >&2 ;;
        124) echo "$script: FAILED: no exit within ${timeout_s} s" >&2 ;;
        *) echo "$script: FAILED: QEMU exited $status" >&2 ;;
    esac
    exit "$status"
fi

# serve: QEMU and the decoder in the background (so that this shell can catch the
# signals), joined by a FIFO so that both PIDs are known; stopped by SIGINT/SIGTERM, and
# never left behind.
qemu_pid=
decoder_pid=
fifo_dir=$(mktemp -d)
# end PID TENTHS SIGNAL: waits up to TENTHS/10 s for PID to exit, then sends SIGNAL, and
# reaps it.
end() {
    local pid=$1 tenths=$2 signal=$3
    [[ -n $pid ]] || return 0
    for _ in $(seq "$tenths"); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "-$signal" "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
stop() {
    trap - INT TERM EXIT
    if [[ -n $qemu_pid ]]; then
        kill -TERM "$qemu_pid" 2>/dev/null || true
        end "$qemu_pid" 50 KILL
    fi
    # The decoder ends at the end of QEMU's output; give it a moment to print the rest.
    end "$decoder_pid" 20 TERM
    rm -rf "$fifo_dir"
}
on_signal() {
    echo "$script: stopped by SIG$1" >&2
    stop
    exit 0
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap stop EXIT

mkfifo "$fifo_dir/log"
"${decode[@]}" <"$fifo_dir/log" &
decoder_pid=$!
echo "$script: ${qemu[*]}" >&2
"${qemu[@]}" </dev/null >"$fifo_dir/log" &
qemu_pid=$!
echo "$script: QEMU pid $qemu_pid" >&2
if [[ -n $tap ]]; then
    echo "$script: the firmware answers on 10.0.2.15:6666 via $tap; stop with Ctrl-C" >&2
else
    echo "$script: 127.0.0.1:$port/udp -> firmware 10.0.2.15:6666; try: udp-echo send --server 127.0.0.1:$port hello; stop with Ctrl-C" >&2
fi
set +e
wait "$qemu_pid"
status=$?
set -e
qemu_pid=
# Here only if QEMU ended by itself (a signal to this shell runs on_signal instead), e.g.
# exit 1 with "Could not set up host forwarding rule" when HOSTPORT is taken.
echo "$script: QEMU exited $status" >&2
exit "$status"
