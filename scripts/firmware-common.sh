# Shared by scripts/qemu-run.sh and scripts/qemu-net.sh (sourced, not run): building a
# firmware package's binary for QEMU mps2-an386 and printing its size.
#
# Before sourcing, set `script` (the name used in messages). Provides: TARGET,
# firmware_setup (resolves CARGO_TARGET_DIR against the caller's cwd, moves to the
# workspace root, checks for QEMU), firmware_build PACKAGE BIN (profile `firmware`; sets
# `bin` to the ELF) and firmware_size (on stdout).

TARGET=thumbv7em-none-eabihf

firmware_setup() {
    # Resolve CARGO_TARGET_DIR against the caller's cwd before moving to the workspace root.
    target_dir=${CARGO_TARGET_DIR:-}
    if [[ -n $target_dir && $target_dir != /* ]]; then target_dir=$PWD/$target_dir; fi
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    target_dir=${target_dir:-$PWD/target}
    # Fail before a minute of compiling, not after.
    if ! command -v qemu-system-arm >/dev/null; then
        echo "$script: qemu-system-arm not found (Debian: apt-get install qemu-system-arm)" >&2
        exit 127
    fi
}

# Panic locations keep their file names in flash: strip the machine-specific prefixes
# ($CARGO_HOME/registry/src/<index>/ and rustc's /rustc/<commit>/), about 60 bytes each,
# 1.5 KB on the network firmware. Cargo adds these to the rustflags of
# .cargo/config.toml.
path_prefix_flags() {
    local dir flags=()
    for dir in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/; do
        [[ -d $dir ]] && flags+=("--remap-path-prefix=$dir=")
    done
    local commit
    commit=$(rustc -vV | sed -n 's/^commit-hash: //p')
    [[ -n $commit ]] && flags+=("--remap-path-prefix=/rustc/$commit/=/rustc/")
    echo "${flags[*]}"
}

firmware_build() {
    local package=$1 name=$2
    bin=$target_dir/$TARGET/firmware/$name
    local var=CARGO_TARGET_${TARGET^^}_RUSTFLAGS
    var=${var//-/_}
    local flags
    flags="${!var:-} $(path_prefix_flags)"
    env "$var=$flags" CARGO_TARGET_DIR="$target_dir" \
        cargo build -p "$package" --bin "$name" --target "$TARGET" --profile firmware
}

firmware_size() {
    if command -v arm-none-eabi-size >/dev/null; then
        arm-none-eabi-size "$bin"
        # Berkeley format, line 2: text data bss dec hex filename. .data is stored in flash
        # and copied to RAM at boot, so it counts on both sides.
        local text data bss
        read -r text data bss _ < <(arm-none-eabi-size "$bin" | sed -n 2p)
        echo "footprint: flash (text+data) = $((text + data)) B, static RAM (data+bss) = $((data + bss)) B"
    else
        echo "$script: arm-none-eabi-size not found, skipping sizes (Debian: binutils-arm-none-eabi)" >&2
    fi
}
