#!/usr/bin/env bash
# Build the bare-metal example (Cortex-M4F, profile `firmware`: size over speed), print its footprint, boot it in QEMU
# (mps2-an386) and decode its defmt output. Exits with QEMU's status, which the firmware
# sets through semihosting: 0 = run() succeeded, 1 = failure or panic, 124 = timed out.
#
# Installs nothing (CI installs first). Needs: the thumbv7em-none-eabihf target,
# qemu-system-arm; optional: arm-none-eabi-size (sizes), defmt-print (decoding).
# Env: CARGO_TARGET_DIR (default target/), QEMU_TIMEOUT seconds (default 60), DEFMT_LOG.
set -euo pipefail

script=qemu-run
# shellcheck source=scripts/firmware-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/firmware-common.sh"
timeout_s=${QEMU_TIMEOUT:-60}

firmware_setup
firmware_build udp-echo-bare-metal bare-metal
firmware_size

qemu=(timeout "$timeout_s" qemu-system-arm -machine mps2-an386 -nographic
      -semihosting-config enable=on,target=native -kernel "$bin")
echo "qemu-run: ${qemu[*]}" >&2
start=$(date +%s%N)
# stdin from /dev/null: -nographic would otherwise grab (and re-mode) an interactive tty.
set +e
if command -v defmt-print >/dev/null; then
    "${qemu[@]}" </dev/null | defmt-print -e "$bin"
    status=("${PIPESTATUS[@]}")
else
    echo "qemu-run: defmt-print not found, showing raw defmt frames" \
         "(cargo install defmt-print --locked)" >&2
    "${qemu[@]}" </dev/null
    status=("$?")
fi
set -e
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))

qemu_status=${status[0]}
if [[ ${#status[@]} -gt 1 && ${status[1]} -ne 0 ]]; then
    echo "qemu-run: defmt-print exited ${status[1]} (log may be incomplete)" >&2
fi
case $qemu_status in
    0)   echo "qemu-run: ok (exit 0) in ${elapsed_ms} ms" >&2 ;;
    124) echo "qemu-run: FAILED: no exit within ${timeout_s} s (firmware hung?)" >&2 ;;
    *)   echo "qemu-run: FAILED: QEMU exited $qemu_status in ${elapsed_ms} ms" >&2 ;;
esac
exit "$qemu_status"
