//! Bare-metal link setup. Host builds (the lib, the TAP binary, tests) must stay
//! untouched, so everything here is gated on a `target_os = "none"` build.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=memory-mps2-an386.x");

    // Cargo exposes the *target's* cfg to build scripts only through env vars;
    // `cfg!(target_os)` here would describe the host that runs this script.
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }

    // cortex-m-rt's link.x does `INCLUDE memory.x`: serve it from OUT_DIR, which the
    // linker searches before the package root (see memory-mps2-an386.x for why).
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy("memory-mps2-an386.x", out.join("memory.x"))
        .expect("copy memory-mps2-an386.x to OUT_DIR/memory.x");
    println!("cargo:rustc-link-search={}", out.display());
}
