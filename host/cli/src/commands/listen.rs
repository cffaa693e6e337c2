//! `udp-echo listen`: the host's [`Server`] as a listener (never replies), on its own
//! socket or on one a service manager passes (socket activation).

use std::process::ExitCode;

use serde_json::json;
use udp_echo_host::clock::Clock;
use udp_echo_host::server::{Options, Server};
use udp_echo_host::udp::BindOptions;

use super::serve::{inherited_socket, refuse_with_inherited};
use super::{STOP_PATIENCE, announce, install_shutdown, server_failure, stop_reason};
use crate::cli::{Failure, ListenArgs};
use crate::diag;

/// Prints what arrives until SIGINT/SIGTERM/SIGHUP; exit 0.
pub fn run(args: &ListenArgs, json: bool) -> Result<ExitCode, Failure> {
    let inherited = inherited_socket()?;
    if inherited.is_some() {
        refuse_with_inherited(args.bind, args.reuse_port)?;
    }
    if args.reuse_port && !cfg!(unix) {
        return Err(Failure::usage(
            "--reuse-port: this system has no SO_REUSEPORT; listeners share a port without it \
             here (listen sets SO_REUSEADDR)",
        ));
    }
    let shutdown = install_shutdown()?;
    let bind = args.bind_addr();
    let mut options = Options::new(bind);
    // Several listeners may share a port, and all get its broadcasts.
    options.socket = BindOptions {
        reuse_addr: true,
        reuse_port: args.reuse_port,
        interface: args.interface.as_ref().map(|i| i.index),
        ..BindOptions::default()
    };
    let from_manager = inherited.is_some();
    let opened = match inherited {
        None => Server::listen(&options).map_err(|e| {
            Failure::network(format!(
                "cannot bind {bind}: {}",
                super::socket_error(&e, bind)
            ))
        }),
        Some(socket) => {
            let local = socket.local_addr();
            Server::listen_inherited(socket, &options).map_err(|e| {
                Failure::network(format!(
                    "cannot take the socket from the service manager ({local}): {}",
                    crate::output::plain(&e)
                ))
            })
        }
    };
    let mut listener: Server = opened?;
    let mut presenter = announce(listener.local_addr(), json, false, args.max_lines)?;
    if from_manager {
        diag!("socket: from the service manager (socket activation)");
    }
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
