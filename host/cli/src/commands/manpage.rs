//! `udp-echo manpage [SUBCOMMAND]`, `manpage --dir DIR`: clap_mangen's roff for the same
//! definitions, with the examples laid out as man pages do (see the `docs` module).

use std::process::ExitCode;

use clap::Args;

use crate::args::Failure;
use crate::docs;

// `manpage`'s options.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ManpageArgs {
    /// The subcommand whose page to print (default: udp-echo's own).
    #[arg(value_name = "SUBCOMMAND", value_parser = clap::builder::PossibleValuesParser::new(docs::PAGES))]
    pub subcommand: Option<String>,
    /// Write every page into this directory instead: udp-echo.1, udp-echo-serve.1, ...
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath, conflicts_with = "subcommand")]
    pub dir: Option<std::path::PathBuf>,
}

/// The text after `--help`'s options.
const AFTER_HELP: &str = "\
Without --dir, prints one page: udp-echo(1), or a subcommand's (udp-echo-serve(1), ...).
With --dir, writes udp-echo.1 and one page per subcommand (udp-echo-serve.1, ...) there,
creating the directory if needed, and prints nothing.

Examples:
  udp-echo manpage > udp-echo.1 && man ./udp-echo.1
  udp-echo manpage serve | man -l -
  udp-echo manpage --dir ~/.local/share/man/man1";

/// Prints one page of `cmd` (the whole command line's definitions), or writes them all
/// into `--dir`.
pub fn run(args: &ManpageArgs, cmd: clap::Command) -> Result<ExitCode, Failure> {
    let failed = |e: std::io::Error| Failure::network(format!("cannot render the man page: {e}"));
    let Some(dir) = &args.dir else {
        let page = docs::man_page(cmd, args.subcommand.as_deref()).map_err(failed)?;
        return super::write_all_stdout(&page);
    };
    let pages = docs::man_pages(cmd).map_err(failed)?;
    let cannot = |path: &std::path::Path, e: std::io::Error| {
        Failure::network(format!(
            "cannot write {}: {}",
            path.display(),
            crate::output::plain(&e)
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| cannot(dir, e))?;
    for (name, page) in pages {
        let path = dir.join(name);
        std::fs::write(&path, page).map_err(|e| cannot(&path, e))?;
    }
    Ok(ExitCode::SUCCESS)
}
