//! Bare-metal link setup for QEMU `mps2-an386`, shared by the firmware packages (the
//! self-test in `bare-metal/` and the network firmware in `net-firmware/` name it with
//! `build = "../mps2-an386/build.rs"`). Host builds (the workspace, tests) must stay
//! untouched, so everything here is gated on a `target_os = "none"` build.

use std::{env, fs, path::PathBuf};

fn main() {
    // Paths here are relative to the package being built, a sibling of this folder.
    println!("cargo:rerun-if-changed=../mps2-an386/build.rs");
    println!("cargo:rerun-if-changed=../mps2-an386/memory-mps2-an386.x");

    // Cargo exposes the *target's* cfg to build scripts only through env vars;
    // `cfg!(target_os)` here would describe the host that runs this script.
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }

    // cortex-m-rt's link.x does `INCLUDE memory.x`: serve it from OUT_DIR, which the
    // linker searches before the package root (see memory-mps2-an386.x for why).
    let package = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let script = package.join("../mps2-an386/memory-mps2-an386.x");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy(&script, out.join("memory.x"))
        .unwrap_or_else(|e| panic!("copy {} to OUT_DIR/memory.x: {e}", script.display()));
    println!("cargo:rustc-link-search={}", out.display());
}
