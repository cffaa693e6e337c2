//! The command line: the `Cli` and `Command` types composed from each command's own
//! arguments (in `commands`), the dispatch, logging and the exit status.
//!
//! Exit codes: 0 success; 1 the network did not deliver (no reply, no server found, a
//! socket error); 2 bad usage or input (clap's own errors use 2 as well).

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::args::Failure;
use crate::commands;
use crate::commands::bench::BenchArgs;
use crate::commands::broadcast::BroadcastArgs;
use crate::commands::completions::CompletionsArgs;
use crate::commands::discover::DiscoverArgs;
use crate::commands::listen::ListenArgs;
use crate::commands::manpage::ManpageArgs;
use crate::commands::ping::PingArgs;
use crate::commands::send::SendArgs;
use crate::commands::serve::ServeArgs;

const EXAMPLES: &str = "\
Addresses: HOST, HOST:PORT, IP, IP:PORT, [IPv6]:PORT, or a bare PORT (127.0.0.1, or every
interface for listen); a number alone is always a port. Port 6666 when none is given.
Durations: 100ms, 2s, 1.5m; a number without a unit is seconds (-i 0.2, -w 5).

Examples:
  udp-echo serve                               # answer on 127.0.0.1:6666
  udp-echo serve --bind 7000                   # 127.0.0.1:7000
  udp-echo serve --bind 0.0.0.0:6666 --quiet   # every interface, nothing printed per datagram
  udp-echo send 'hello world!'                 # to 127.0.0.1:6666; prints: Your data was 12 bytes
  udp-echo send ::1 'hello'                    # HOST then MESSAGE
  head -c 1000 /dev/urandom | udp-echo send -  # binary payload from stdin
  udp-echo ping -c 10 -i 0.2 -s 1400 localhost
  udp-echo listen --bind 6666                  # print broadcasts, never reply
  udp-echo broadcast hi --to 192.168.1.255:6666
  udp-echo discover --wait 2                   # who answers on the LAN?
  udp-echo bench 127.0.0.1:6666 -t 2 --window 32
  udp-echo completions bash > /etc/bash_completion.d/udp-echo
  udp-echo manpage > udp-echo.1

Exit status: 0 success, 1 no reply / nothing found / network error or a failed write of
results, 2 bad usage or input, 141 stdout closed (e.g. `| head -1`).";

/// Byte-count UDP echo: every datagram is answered with `Your data was N bytes`.
#[derive(Debug, Parser)]
#[command(name = "udp-echo", version, after_help = EXAMPLES)]
pub struct Cli {
    /// More logging on stderr: -v debug, -vv trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// JSON Lines on stdout (one JSON object per line, each with an "event" field), for
    /// scripts. Payloads come as "payload_b64" (standard base64) and, when valid UTF-8,
    /// "text".
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. Deferred: only the one used has its arguments built (clap's work
/// is most of a one-shot `send`'s own).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Answer every datagram with its byte count, printing who sent what.
    Serve(ServeArgs),
    /// Send one message and print the server's reply, retrying with backoff.
    Send(SendArgs),
    /// Repeated exchanges, one line each, then loss and RTT statistics.
    Ping(PingArgs),
    /// Send one datagram to a broadcast (or any) address; nothing is awaited.
    Broadcast(BroadcastArgs),
    /// Print every datagram that arrives (e.g. broadcasts); never reply.
    Listen(ListenArgs),
    /// Broadcast one request and list every server that answered, with its RTT.
    Discover(DiscoverArgs),
    /// A bounded load test of one server: replies/s, bits/s and RTT percentiles.
    Bench(BenchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions(CompletionsArgs),
    /// Print a man page (roff) on stdout, or write them all, generated from these definitions.
    Manpage(ManpageArgs),
}

/// Parses the command line, runs the command, and turns its result into an exit status.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let json = cli.json;
    if !matches!(cli.command, Command::Serve(_) | Command::Listen(_)) {
        // The server loops stop on a closed stdout by themselves (and print their summary).
        crate::output::exit_when_stdout_closes();
    }
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(&args, json),
        Command::Send(args) => commands::send::run(&args, json),
        Command::Ping(args) => commands::ping::run(&args, json),
        Command::Broadcast(args) => commands::broadcast::run(&args, json),
        Command::Listen(args) => commands::listen::run(&args, json),
        Command::Discover(args) => commands::discover::run(&args, json),
        Command::Bench(args) => commands::bench::run(&args, json),
        Command::Completions(args) => commands::completions::run(&args, Cli::command()),
        Command::Manpage(args) => commands::manpage::run(&args, Cli::command()),
    };
    let written = match crate::output::stdout_error() {
        None => Ok(()),
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return ExitCode::from(crate::output::CLOSED_STDOUT);
        }
        Some(e) => Err(Failure::network(format!(
            "cannot write the results to stdout: {}",
            crate::output::plain(&e)
        ))),
    };
    match result.and_then(|code| written.map(|()| code)) {
        Ok(code) => code,
        Err(failure) => {
            crate::output::diag(format_args!("udp-echo: {}", failure.message));
            ExitCode::from(failure.code)
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "udp_echo=debug,udp_echo_host=debug,udp_echo_core=debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn pages_lists_every_subcommand_but_help() {
        let cmd = Cli::command();
        let names: Vec<&str> = cmd
            .get_subcommands()
            .map(|s| s.get_name())
            .filter(|n| *n != "help")
            .collect();
        assert_eq!(names, crate::docs::PAGES);
    }
}
