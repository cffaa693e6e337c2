//! `udp-echo completions SHELL`: a shell completion script on stdout, generated from the
//! clap definitions (repaired: see the `docs` module).

use std::process::ExitCode;

use clap::Args;

use crate::args::Failure;

// `completions`' options.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The text after `--help`'s options.
const AFTER_HELP: &str = "\
Examples:
  udp-echo completions bash > ~/.local/share/bash-completion/completions/udp-echo
  udp-echo completions zsh > ~/.zfunc/_udp-echo";

/// Prints clap_complete's script for `cmd` (the whole command line's definitions),
/// repaired for bash and fish.
pub fn run(args: &CompletionsArgs, cmd: clap::Command) -> Result<ExitCode, Failure> {
    super::write_all_stdout(&crate::docs::completions(cmd, args.shell))
}
