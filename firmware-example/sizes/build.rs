//! Link setup for the size images, and for the no-panic proof (`../no-panic`, which
//! links the same way): the memory map of QEMU `mps2-an386`, as the firmware
//! packages use (`../mps2-an386/build.rs`), plus an empty `defmt.x`. The workspace's
//! `.cargo/config.toml` passes `-Tdefmt.x` for every thumbv7em link, and these images
//! leave defmt out on purpose (it is not the core's code): the empty script satisfies the
//! flag and adds nothing. Host builds are left untouched.

use std::{env, fs, path::PathBuf};

fn main() {
    // Relative to the package that builds with this script (this one, and
    // `udp-echo-no-panic`, which names it with `build = "../sizes/build.rs"`).
    println!("cargo:rerun-if-changed=../sizes/build.rs");
    println!("cargo:rerun-if-changed=../mps2-an386/memory-mps2-an386.x");

    // The *target's* cfg reaches build scripts only through env vars.
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }

    // cortex-m-rt's link.x does `INCLUDE memory.x`: served from OUT_DIR, which the linker
    // searches before the package root (see memory-mps2-an386.x).
    let package = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let memory = package.join("../mps2-an386/memory-mps2-an386.x");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy(&memory, out.join("memory.x"))
        .unwrap_or_else(|e| panic!("copy {} to OUT_DIR/memory.x: {e}", memory.display()));
    fs::write(
        out.join("defmt.x"),
        "/* Empty: these images carry no defmt (see build.rs). */\n",
    )
    .unwrap_or_else(|e| panic!("write OUT_DIR/defmt.x: {e}"));
    println!("cargo:rustc-link-search={}", out.display());
}
