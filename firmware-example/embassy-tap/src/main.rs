//! `embassy-tap`: the core's async client and server on embassy-net over a Linux TAP
//! device, on embassy-executor's std thread executor and embassy-time's std driver. The
//! same command line, output and exit codes as `firmware-example` (the smoltcp 0.14 TAP
//! binary). See `embassy-tap --help`.

#[cfg(target_os = "linux")]
mod linux;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!("embassy-tap: runs on Linux only (it attaches to a Linux TAP device)");
    std::process::ExitCode::from(1)
}
