//! `udp-echo listen`: the core's `Listener` (never replies) in the host's loop.

use std::process::ExitCode;

use serde_json::json;
use udp_echo_core::Listener;
use udp_echo_host::clock::Clock;
use udp_echo_host::server::run_listener;
use udp_echo_host::stack::{CAPS, StdStack};

use super::{STOP_PATIENCE, announce, install_shutdown, server_failure, stop_reason};
use crate::cli::{Failure, ListenArgs};
use crate::diag;

/// Prints what arrives until SIGINT/SIGTERM; exit 0.
pub fn run(args: &ListenArgs, json: bool) -> Result<ExitCode, Failure> {
    let shutdown = install_shutdown()?;
    let mut stack = StdStack::new()
        .with_bind_ip(args.bind.ip())
        .with_reuse_addr(true);
    let mut listener = Listener::bind(&mut stack, args.bind.port())
        .map_err(|e| match e {
            udp_echo_core::ServerError::Stack(e) => Failure::network(format!(
                "cannot bind {}: {}",
                args.bind,
                super::socket_error(e.io_error(), args.bind)
            )),
        })?
        .with_caps(CAPS);
    let mut presenter = announce(listener.socket(), json, false, args.max_lines)?;
    let clock = Clock::new();
    let result = run_listener(
        &mut stack,
        &mut listener,
        &clock,
        Some(&shutdown),
        &mut presenter,
    );
    let received = listener.received();
    let _ = listener.close(&mut stack);
    let why = stop_reason(&result, &shutdown);
    let last =
        json.then(|| json!({"event": "stopped", "reason": why, "received": received}).to_string());
    presenter.finish(last, STOP_PATIENCE);
    if !json {
        diag!("udp-echo: stopped by {why}: received {received}");
    }
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(server_failure(e, "receive failed")),
    }
}
