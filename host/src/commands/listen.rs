//! `udp-echo listen`: the core's `Listener` (never replies) in the host's loop.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;
use udp_echo_core::Listener;
use udp_echo_host::clock::Clock;
use udp_echo_host::server::{Stopped, run_listener};
use udp_echo_host::shutdown::Shutdown;
use udp_echo_host::stack::StdStack;

use super::server_failure;
use crate::cli::{Failure, ListenArgs};
use crate::diag;
use crate::output::{Presenter, Stdout};

/// Prints what arrives until SIGINT/SIGTERM; exit 0.
pub fn run(args: &ListenArgs, json: bool) -> Result<ExitCode, Failure> {
    let shutdown = Shutdown::install()
        .map_err(|e| Failure::network(format!("cannot install signal handlers: {e}")))?;
    let mut stack = StdStack::new()
        .with_bind_ip(args.bind.ip())
        .with_reuse_addr(true);
    let mut listener = Listener::bind(&mut stack, args.bind.port())
        .map_err(|e| server_failure(e, &format!("cannot bind {}", args.bind)))?;
    let local = listener
        .socket()
        .local_addr()
        .map_err(|e| Failure::network(format!("cannot read the bound address: {e}")))?;
    let mut presenter = Presenter::new(json, false, args.max_lines);
    diag!("listening on {local}");
    if json {
        presenter.event(json!({"event": "listening", "addr": local.to_string()}).to_string());
    }
    let clock = Clock::new();
    let result = run_listener(
        &mut stack,
        &mut listener,
        &clock,
        Some(&shutdown),
        &mut presenter,
    );
    presenter.finish(Duration::from_millis(200));
    let received = listener.received();
    let _ = listener.close(&mut stack);
    let why = match &result {
        Ok(Stopped::Signal) => shutdown.signal_name().unwrap_or("a signal").to_string(),
        Ok(Stopped::Observer) => "stdout closed".to_string(),
        Err(e) => format!("error: {e}"),
    };
    if json {
        Stdout::default().json(&json!({"event": "stopped", "reason": why, "received": received}));
    } else {
        diag!("udp-echo: stopped by {why}: received {received}");
    }
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(server_failure(e, "receive failed")),
    }
}
