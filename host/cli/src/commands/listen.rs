//! `udp-echo listen`: the host's [`Server`] as a listener (never replies).

use std::process::ExitCode;

use serde_json::json;
use udp_echo_host::clock::Clock;
use udp_echo_host::server::{Options, Server};
use udp_echo_host::udp::BindOptions;

use super::{STOP_PATIENCE, announce, install_shutdown, server_failure, stop_reason};
use crate::cli::{Failure, ListenArgs};
use crate::diag;

/// Prints what arrives until SIGINT/SIGTERM; exit 0.
pub fn run(args: &ListenArgs, json: bool) -> Result<ExitCode, Failure> {
    let shutdown = install_shutdown()?;
    let mut options = Options::new(args.bind);
    // Several listeners may share a port, and all get its broadcasts.
    options.socket = BindOptions {
        reuse_addr: true,
        ..BindOptions::default()
    };
    let mut listener: Server = Server::listen(&options).map_err(|e| {
        Failure::network(format!(
            "cannot bind {}: {}",
            args.bind,
            super::socket_error(&e, args.bind)
        ))
    })?;
    let mut presenter = announce(listener.local_addr(), json, false, args.max_lines)?;
    let result = listener.run(&Clock::new(), Some(&shutdown), &mut presenter);
    let received = listener.counters().received;
    let why = stop_reason(&result, &shutdown);
    let last =
        json.then(|| json!({"event": "stopped", "reason": why, "received": received}).to_string());
    presenter.finish(last, STOP_PATIENCE);
    if !json {
        diag!("udp-echo: stopped by {why}: received {received}");
    }
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(server_failure(&e, "receive failed")),
    }
}
