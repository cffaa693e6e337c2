#!/usr/bin/env bash
# The no-panic proof of udp-echo-core (see README.md next to this script):
#
#   firmware-example/no-panic/check.sh            # the proof: builds, or fails to link
#   firmware-example/no-panic/check.sh --locate   # where the panics are, when it fails
#
# The proof is this one command, which CI can run as it is:
#
#   cargo build -p udp-echo-no-panic --target thumbv7em-none-eabihf --profile firmware
#
# It links only if no panic is reachable in the image; otherwise rust-lld says
# `undefined symbol: a_panic_path_is_reachable` (the panic handler's call), which names no
# culprit. `--locate` then builds the same image with a halting panic handler (feature
# `locate`) and line tables, and lists each call into the panic machinery with the chain
# of inlined source lines that leads to it: the innermost `core/src/...` line is the panic
# to remove.
#
# Needs the thumbv7em-none-eabihf target; --locate also needs arm-none-eabi-objdump and
# arm-none-eabi-addr2line (Debian: binutils-arm-none-eabi) and python3.
# Env: CARGO_TARGET_DIR (default target/).
set -euo pipefail

script=no-panic
target_dir=${CARGO_TARGET_DIR:-}
if [[ -n $target_dir && $target_dir != /* ]]; then target_dir=$PWD/$target_dir; fi
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
target_dir=${target_dir:-$PWD/target}
export CARGO_TARGET_DIR=$target_dir

build=(cargo build -p udp-echo-no-panic --target thumbv7em-none-eabihf --profile firmware)

case ${1:-} in
"")
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    if "${build[@]}" 2>&1 | tee "$log" >&2; [[ ${PIPESTATUS[0]} -eq 0 ]]; then
        echo "$script: ok: no panic of udp-echo-core is reachable (features async, jitter; profile firmware)"
        exit 0
    fi
    if grep -q a_panic_path_is_reachable "$log"; then
        echo "$script: FAILED: a panic path is reachable; run $0 --locate to find it" >&2
    else
        echo "$script: the build failed for another reason (see above)" >&2
    fi
    exit 1
    ;;
--locate) ;;
*)
    echo "usage: $0 [--locate]" >&2
    exit 2
    ;;
esac

for tool in arm-none-eabi-objdump arm-none-eabi-addr2line python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "$script: $tool not found" >&2
        exit 127
    fi
done

# Line tables do not change what the optimiser keeps; the halting handler lets it link.
# Identical-code folding (--icf=all in .cargo/config.toml) would give one address the
# names of several panic functions: off here (a link option: the code is the same).
var=CARGO_TARGET_THUMBV7EM_NONE_EABIHF_RUSTFLAGS
CARGO_PROFILE_FIRMWARE_DEBUG=line-tables-only env "$var=${!var:-} -C link-arg=--icf=none" \
    "${build[@]}" --features locate >&2
bin=$target_dir/thumbv7em-none-eabihf/firmware/no-panic

# Functions are told apart by address and judged by every name they carry (aliases).
arm-none-eabi-nm -C "$bin" >"$bin.names"
arm-none-eabi-objdump -d -C --no-show-raw-insn "$bin" | python3 -c '
import re, subprocess, sys

bin, names_file = sys.argv[1], sys.argv[2]
names = {}   # address -> every name at it
for line in open(names_file):
    m = re.match(r"^([0-9a-f]+) [tT] (.*)$", line.rstrip("\n"))
    if m:
        names.setdefault(int(m.group(1), 16) & ~1, []).append(m.group(2))

func = None
calls = {}   # function address -> [(call address, callee address)]
for line in sys.stdin:
    m = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
    if m:
        func = int(m.group(1), 16)
        calls.setdefault(func, [])
        names.setdefault(func, [m.group(2)])
        continue
    # A branch to the start of a function: "addr: bl 1234 <name>" (no +offset).
    m = re.match(r"^\s*([0-9a-f]+):\s+b[a-z.]*\s+([0-9a-f]+) <([^>+]*)>$", line)
    if m and func is not None:
        calls[func].append((m.group(1), int(m.group(2), 16)))

# The panic machinery and the rest of the standard library: core, compiler-builtins,
# and the impls core has for its own types (`<u64 as core::fmt::Display>::fmt`, ...).
machinery = re.compile(
    r"rust_begin_unwind|^core::|^<core::|^compiler_builtins::|^__aeabi_|^mem(cpy|set|move|cmp)$|"
    r"^<(&T|&mut T|u8|u16|u32|u64|u128|usize|i8|i16|i32|i64|i128|isize|str|bool|char) as core::"
)
def is_machinery(f):
    return any(machinery.search(n) for n in names.get(f, []))
def name(f):
    return " = ".join(names.get(f, [hex(f)]))

# The panic machinery: its entry points, and any function (in core::fmt too) that
# can reach the panic handler.
sinks = {f for f in names if is_machinery(f) and any(
    re.search(r"rust_begin_unwind|^core::panicking::|_failed$|_fail$|^core::cell::panic_", n)
    for n in names[f])}
grew = True
while grew:
    grew = False
    for f, cs in calls.items():
        if f not in sinks and is_machinery(f) and any(c in sinks for _, c in cs):
            sinks.add(f)
            grew = True

# Each call from code outside the machinery straight into it: a panic site.
sites = [(f, a, c) for f, cs in calls.items() if not is_machinery(f)
         for a, c in cs if c in sinks]
if not sites:
    print("no call into the panic machinery outside it: the proof should link")
    sys.exit(0)
for f, a, c in sites:
    chain = subprocess.run(["arm-none-eabi-addr2line", "-e", bin, "-i", "-f", "-C", "-a", a],
                           capture_output=True, text=True).stdout.splitlines()[1:]
    print(f"{a} in {name(f)}\n    calls {name(c)}")
    for fn, loc in zip(chain[0::2], chain[1::2]):
        print(f"    at {loc}  ({fn})")
print(f"{len(sites)} call(s) into the panic machinery")
' "$bin" "$bin.names"
