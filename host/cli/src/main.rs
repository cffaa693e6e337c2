//! `udp-echo`: the byte-count echo protocol's command-line tool. See `udp-echo --help`.

mod args;
mod cli;
mod commands;
mod docs;
mod output;
mod payload;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
