#!/usr/bin/env bash
# Flash and static RAM of each role of udp-echo-core, linked alone into a minimal image
# (firmware-example/sizes/), next to the two firmware images; a markdown table on stdout:
#
#   scripts/sizes.sh
#
# Every image is built like the firmware (thumbv7em-none-eabihf, profile `firmware`:
# opt-level "s", fat LTO, one codegen unit; linked for QEMU mps2-an386; the same
# rustflags as scripts/qemu-run.sh and scripts/qemu-net.sh):
#   baseline       cortex-m-rt (its vector table is 1 KB), the panic handler and the
#                  mailbox the size images read their inputs from: in each of them
#   sync-client    udp_echo_core::request over an embedded-nal stack stand-in
#   sync-server    Server::bind + poll, default ResponderConfig, same stand-in
#   async-client   asynch::request over a ConnectedUdp stand-in, under block_on
#   async-server   asynch::Server::run, default ResponderConfig, UnconnectedUdp stand-in
#   bare-metal     the firmware self-test (udp-echo-bare-metal), when it builds
#   net-firmware   the network firmware (udp-echo-net-firmware), when it builds
#
# flash = text + data (the initial values of .data are stored in flash), static RAM =
# data + bss. The drivers keep no statics: their state lives wherever the caller puts it,
# in the size images on the stack of the entry function (where everything but a few leaf
# helpers is inlined), so the last column gives the stack that function reserves (its
# `push` and `sub sp`): the drivers' state, a 64-byte datagram buffer and temporaries.
# "role" = flash above baseline: the core's code for that role and the stand-in's calls.
#
# Cargo's output goes to stderr. Exits non-zero if a size image fails to build; a
# firmware image that does not build gets a row saying so.
# Installs nothing. Needs the thumbv7em-none-eabihf target and arm-none-eabi-size and
# arm-none-eabi-objdump (Debian: binutils-arm-none-eabi).
# Env: CARGO_TARGET_DIR (default target/).
set -euo pipefail

script=sizes
# shellcheck source=scripts/firmware-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/firmware-common.sh"

# As firmware_setup, without its QEMU check: nothing here boots. Resolve CARGO_TARGET_DIR
# against the caller's cwd before moving to the workspace root.
target_dir=${CARGO_TARGET_DIR:-}
if [[ -n $target_dir && $target_dir != /* ]]; then target_dir=$PWD/$target_dir; fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target_dir=${target_dir:-$PWD/target}

for tool in arm-none-eabi-size arm-none-eabi-objdump; do
    if ! command -v "$tool" >/dev/null; then
        echo "$script: $tool not found (Debian: apt-get install binutils-arm-none-eabi)" >&2
        exit 127
    fi
done

# sections: "text data bss" of $bin (Berkeley format, line 2).
sections() {
    local text data bss
    read -r text data bss _ < <(arm-none-eabi-size "$bin" | sed -n 2p)
    echo "$text $data $bss"
}

# entry_frame: bytes the entry function (cortex-m-rt's `__cortex_m_rt_main`) reserves on
# the stack: 4 per pushed register, plus its `sub sp` immediates.
entry_frame() {
    arm-none-eabi-objdump -d --no-show-raw-insn "$bin" | awk '
        /^[0-9a-f]+ <.*>:$/ { inside = ($0 ~ /__cortex_m_rt_main/); next }
        !inside { next }
        /\t(push|stmdb)(\.w)?\t(sp!, )?\{/ {
            regs = $0; sub(/.*\{/, "", regs); sub(/\}.*/, "", regs)
            bytes += 4 * split(regs, r, ",")
        }
        /\tvpush\t\{/ {
            regs = $0; sub(/.*\{/, "", regs); sub(/\}.*/, "", regs)
            bytes += 8 * split(regs, r, ",")
        }
        /\tsub(\.w|w)?\tsp, (sp, )?#[0-9]+/ {
            match($0, /#[0-9]+/); bytes += substr($0, RSTART + 1, RLENGTH - 1)
        }
        END { print bytes + 0 }'
}

rows=()
baseline_flash=

# size_image NAME WHAT: builds a size image and adds its row.
size_image() {
    local name=$1 what=$2 text data bss flash role
    firmware_build udp-echo-sizes "$name" >&2
    read -r text data bss < <(sections)
    flash=$((text + data))
    if [[ -z $baseline_flash ]]; then
        baseline_flash=$flash
        role="—"
    else
        role=$((flash - baseline_flash))
    fi
    rows+=("| \`$name\` | $what | $flash | $role | $((data + bss)) | $(entry_frame) |")
}

# firmware_image PACKAGE NAME WHAT: builds a firmware image and adds its row (or says that
# it does not build).
firmware_image() {
    local package=$1 name=$2 what=$3 text data bss
    if firmware_build "$package" "$name" >&2; then
        read -r text data bss < <(sections)
        rows+=("| \`$name\` | $what | $((text + data)) | — | $((data + bss)) | — |")
    else
        echo "$script: $package did not build (see above); its row says so" >&2
        rows+=("| \`$name\` | $what | did not build | — | did not build | — |")
    fi
}

size_image baseline "cortex-m-rt, panic handler, mailbox (no core)"
size_image sync-client "\`request\` over an \`embedded-nal\` stack"
size_image sync-server "\`Server::bind\` + \`poll\`, default \`ResponderConfig\`"
size_image async-client "\`asynch::request\` over \`ConnectedUdp\`, \`block_on\`"
size_image async-server "\`asynch::Server::run\` over \`UnconnectedUdp\`, \`block_on\`"
firmware_image udp-echo-bare-metal bare-metal "self-test: smoltcp loopback, defmt"
firmware_image udp-echo-net-firmware net-firmware "LAN9118 + smoltcp, server and client, defmt"

echo "| image | links | flash (text+data) B | role (flash over baseline) B | static RAM (data+bss) B | entry's stack frame B |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
