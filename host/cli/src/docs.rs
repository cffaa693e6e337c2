//! `completions` and `manpage`: shell completion scripts and man pages, generated from the
//! clap definitions by clap_complete and clap_mangen, with the few repairs described at each
//! function.

use std::io;

use clap::Command;
use clap_complete::Shell;

/// The binary's name, as the shells and the man pages know it.
const BIN: &str = "udp-echo";

/// The subcommands that have a page of their own (`udp-echo-NAME.1`): every subcommand but
/// `help`. A unit test checks it against the definitions; it is a list because `manpage`'s
/// own argument offers it, and that argument is part of the definitions.
pub(crate) const PAGES: [&str; 9] = [
    "serve",
    "send",
    "ping",
    "broadcast",
    "listen",
    "discover",
    "bench",
    "completions",
    "manpage",
];

// ---------------------------------------------------------------------------------------
// Completions
// ---------------------------------------------------------------------------------------

/// The completion script for `shell`: clap_complete's, repaired for bash and fish.
pub(crate) fn completions(mut cmd: Command, shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut out);
    let script = match (shell, String::from_utf8(out)) {
        (Shell::Bash, Ok(script)) => bash_case_names(&script, BIN),
        (Shell::Fish, Ok(script)) => script + &fish_positionals(&cmd, BIN),
        (_, Ok(script)) => script,
        (_, Err(e)) => return e.into_bytes(),
    };
    script.into_bytes()
}

/// Repairs clap_complete's bash script for a binary name with a hyphen (clap issue #6421,
/// clap_complete 4.6): the loop over the words names the state of `udp-echo serve`
/// `udp__echo__subcmd__serve` (the binary's `-` replaced by `__`), but the arms of the case
/// that completes each state are named `udp__subcmd__echo__subcmd__serve` (the binary's `-`
/// replaced by the separator `__subcmd__`, as for a subcommand's). No arm matched, so after
/// any subcommand bash completed nothing (or files, through `-o default`).
///
/// The repair renames those arms to the loop's names: on a line that is a case arm (a name
/// and `)` alone), the prefix `udp__subcmd__echo__subcmd__` becomes `udp__echo__subcmd__`.
/// Only the binary's part of a name differed; a subcommand's own hyphens are spelt alike in
/// both places. If clap_complete spells them alike (a fixed version, or a name without a
/// hyphen), nothing matches and the script is unchanged.
fn bash_case_names(script: &str, bin: &str) -> String {
    const SEP: &str = "__subcmd__";
    let wrong = format!("{}{SEP}", bin.replace('-', SEP));
    let right = format!("{}{SEP}", bin.replace('-', "__"));
    if wrong == right {
        return script.to_owned();
    }
    let mut fixed = String::with_capacity(script.len());
    for line in script.split_inclusive('\n') {
        let name = line.trim();
        let arm = name.strip_suffix(')').filter(|n| {
            n.starts_with(&wrong) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
        match arm {
            Some(_) => fixed.push_str(&line.replacen(&wrong, &right, 1)),
            None => fixed.push_str(line),
        }
    }
    fixed
}

/// Completions for positional arguments with a fixed set of values (`completions SHELL`,
/// `manpage SUBCOMMAND`), appended to clap_complete's fish script: its fish generator
/// completes options only, so fish offered files there. For a subcommand whose positional
/// arguments all have such values, files are never offered (an option's value still gets
/// its own completion, e.g. directories for `manpage --dir`).
fn fish_positionals(cmd: &Command, bin: &str) -> String {
    let prefix = format!("__fish_{}", bin.replace('-', "_"));
    let mut out = String::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let positionals: Vec<_> = sub.get_positionals().filter(|a| !a.is_hide_set()).collect();
        let fixed = |a: &&clap::Arg| !a.get_possible_values().is_empty();
        if positionals.is_empty() || !positionals.iter().all(fixed) {
            continue;
        }
        let name = sub.get_name();
        // Options as argparse(1) spells them, so that their values are not counted as
        // positional arguments.
        let mut specs = Vec::new();
        for arg in sub.get_arguments().filter(|a| !a.is_positional()) {
            let takes = arg.get_num_args().is_some_and(|n| n.takes_values())
                && !matches!(
                    arg.get_action(),
                    clap::ArgAction::SetTrue | clap::ArgAction::Count
                );
            let spec = match (arg.get_short(), arg.get_long()) {
                (Some(s), Some(l)) => format!("{s}/{l}"),
                (Some(s), None) => format!("{s}/"),
                (None, Some(l)) => l.to_owned(),
                (None, None) => continue,
            };
            specs.push(if takes { format!("{spec}=") } else { spec });
        }
        let specs = specs.join(" ");
        if out.is_empty() {
            out.push_str(&format!(
                "\n# Added by {bin} (clap_complete's fish script completes options only): the\n\
                 # positional arguments with a fixed set of values.\n\
                 # {prefix}_positional SUBCOMMAND N OPTSPEC...: the word being completed is the\n\
                 # Nth positional argument of SUBCOMMAND.\n\
                 function {prefix}_positional\n\
                 \x20   set -l sub $argv[1]\n\
                 \x20   set -l n $argv[2]\n\
                 \x20   set -l specs $argv[3..-1]\n\
                 \x20   set -l words (commandline -opc)\n\
                 \x20   set -e words[1]\n\
                 \x20   argparse -s ({prefix}_global_optspecs) -- $words 2>/dev/null\n\
                 \x20   or return 1\n\
                 \x20   test \"$argv[1]\" = \"$sub\"\n\
                 \x20   or return 1\n\
                 \x20   set -e argv[1]\n\
                 \x20   argparse $specs -- $argv 2>/dev/null\n\
                 \x20   or return 1\n\
                 \x20   test (count $argv) -eq (math $n - 1)\n\
                 end\n"
            ));
        }
        out.push_str(&format!(
            "complete -c {bin} -n \"{prefix}_using_subcommand {name}\" -f\n"
        ));
        for (i, arg) in positionals.iter().enumerate() {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| match v.get_help() {
                    Some(help) => {
                        format!("{}\\t'{}'", v.get_name(), fish_quoted(&help.to_string()))
                    }
                    None => v.get_name().to_owned(),
                })
                .collect();
            out.push_str(&format!(
                "complete -c {bin} -n \"{prefix}_positional {name} {n} {specs}\" -f -a \"{values}\"\n",
                n = i + 1,
                values = values.join("\n"),
            ));
        }
    }
    out
}

/// Text for inside '…' in fish.
fn fish_quoted(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\'', "\\'")
        .replace('"', "\\\"")
}

// ---------------------------------------------------------------------------------------
// Man pages
// ---------------------------------------------------------------------------------------

/// Every page: (file name, roff), `udp-echo.1` first, then one per subcommand.
pub(crate) fn man_pages(cmd: Command) -> io::Result<Vec<(String, Vec<u8>)>> {
    let cmd = for_man(cmd);
    let mut pages = vec![(format!("{BIN}.1"), page(&cmd, None)?)];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{BIN}-{}.1", sub.get_name());
        pages.push((name, page(sub, Some(&cmd))?));
    }
    Ok(pages)
}

/// One page: the top level's, or `subcommand`'s.
pub(crate) fn man_page(cmd: Command, subcommand: Option<&str>) -> io::Result<Vec<u8>> {
    let cmd = for_man(cmd);
    match subcommand {
        None => page(&cmd, None),
        Some(name) => match cmd.find_subcommand(name) {
            Some(sub) => page(sub, Some(&cmd)),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no subcommand {name}"),
            )),
        },
    }
}

/// The definitions as the pages show them: built (so subcommands have their display names,
/// `udp-echo-serve`, and the global options), without the `help` subcommand, which has no
/// page.
fn for_man(cmd: Command) -> Command {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// clap_mangen's sections, except that the text after the options (clap's `after_help`,
/// which clap_mangen prints verbatim and reflowed under EXTRA) is laid out as man pages
/// are: its prose in DESCRIPTION, `Exit status:` as EXIT STATUS and `Examples:` as
/// EXAMPLES, each example an indented .EX block under its comment.
fn page(cmd: &Command, parent: Option<&Command>) -> io::Result<Vec<u8>> {
    let after = cmd
        .get_after_long_help()
        .or_else(|| cmd.get_after_help())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let text = AfterHelp::parse(&after);

    // The footer names the package and its version on every page (a subcommand has no
    // version of its own).
    let top = parent.unwrap_or(cmd);
    let source = format!(
        "{} {}",
        top.get_name(),
        top.get_version().unwrap_or_default()
    );
    let man = clap_mangen::Man::new(cmd.clone()).source(source.trim_end());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    let mut section = |f: &dyn Fn(&mut dyn io::Write) -> io::Result<()>| -> io::Result<()> {
        let mut buf = Vec::new();
        f(&mut buf)?;
        out.extend_from_slice(strip_preamble(&buf));
        Ok(())
    };
    section(&|w| man.render_name_section(w))?;
    section(&|w| man.render_synopsis_section(w))?;
    section(&|w| man.render_description_section(w))?;
    let mut roff = String::new();
    for paragraph in &text.prose {
        roff.push_str(".PP\n");
        for line in paragraph {
            roff.push_str(&roff_line(line));
        }
    }
    section(&|w| w.write_all(roff.as_bytes()))?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        section(&|w| man.render_options_section(w))?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        section(&|w| man.render_subcommands_section(w))?;
    }

    let mut roff = String::new();
    if !text.exit_status.is_empty() {
        roff.push_str(".SH \"EXIT STATUS\"\n");
        for line in &text.exit_status {
            roff.push_str(&roff_line(line));
        }
    }
    if !text.examples.is_empty() {
        roff.push_str(".SH EXAMPLES\n");
        for (command, comment) in &text.examples {
            roff.push_str(".PP\n");
            if let Some(comment) = comment {
                roff.push_str(&roff_line(comment));
            }
            roff.push_str(".RS 4\n.EX\n");
            roff.push_str(&roff_line(command));
            roff.push_str(".EE\n.RE\n");
        }
    }
    section(&|w| w.write_all(roff.as_bytes()))?;
    if cmd.get_version().is_some() {
        section(&|w| man.render_version_section(w))?;
    }
    if let Some(parent) = parent {
        let name = parent.get_display_name().unwrap_or(parent.get_name());
        let see_also = format!(".SH \"SEE ALSO\"\n.BR {} (1)\n", roff_escape(name));
        section(&|w| w.write_all(see_also.as_bytes()))?;
    }
    Ok(ascii_only(out))
}

/// Characters beyond ASCII (`…` in the options' help) as groff's `\[uXXXX]`: troff reads
/// its input as Latin-1 unless preconv(1) ran first (man does that; `groff -man` alone does
/// not, and warns), and the escape reads the same either way, in groff and in mandoc.
fn ascii_only(roff: Vec<u8>) -> Vec<u8> {
    match String::from_utf8(roff) {
        Ok(text) if !text.is_ascii() => {
            let mut out = String::with_capacity(text.len() + 16);
            for c in text.chars() {
                if c.is_ascii() {
                    out.push(c);
                } else {
                    out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
                }
            }
            out.into_bytes()
        }
        Ok(text) => text.into_bytes(),
        Err(e) => e.into_bytes(),
    }
}

/// clap_mangen (the roff crate) starts every rendering with the definition of the `Aq`
/// string; the page needs it once, from its title.
fn strip_preamble(roff: &[u8]) -> &[u8] {
    const PREAMBLE: &[u8] = b".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    roff.strip_prefix(PREAMBLE).unwrap_or(roff)
}

/// `after_help`'s text, sorted into the sections of a man page.
#[derive(Debug, Default)]
struct AfterHelp {
    /// Paragraphs for DESCRIPTION, each a list of lines (the man reader fills them).
    prose: Vec<Vec<String>>,
    /// The lines of a block starting `Exit status:`, without that label.
    exit_status: Vec<String>,
    /// From a block starting `Examples:` or `Example:`, one entry a line: the command and its
    /// comment (what follows two or more spaces and `# `).
    examples: Vec<(String, Option<String>)>,
}

impl AfterHelp {
    /// Blocks are separated by empty lines. In prose, a line starting with a one- or
    /// two-word label and a colon (`Durations: …`) starts a new paragraph.
    fn parse(text: &str) -> AfterHelp {
        let mut parsed = AfterHelp::default();
        for block in text.split("\n\n") {
            let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
            let Some(first) = lines.first() else {
                continue;
            };
            if matches!(first.trim(), "Examples:" | "Example:") {
                for line in &lines[1..] {
                    let line = line.trim();
                    parsed.examples.push(match line.find("  # ") {
                        Some(i) => (
                            line[..i].trim_end().to_owned(),
                            Some(line[i + 4..].trim().to_owned()),
                        ),
                        None => (line.to_owned(), None),
                    });
                }
            } else if let Some(rest) = first.strip_prefix("Exit status:") {
                parsed.exit_status.push(rest.trim().to_owned());
                parsed
                    .exit_status
                    .extend(lines[1..].iter().map(|l| l.trim().to_owned()));
            } else {
                let mut paragraph: Vec<String> = Vec::new();
                for line in lines {
                    if starts_with_label(line) && !paragraph.is_empty() {
                        parsed.prose.push(std::mem::take(&mut paragraph));
                    }
                    paragraph.push(line.trim().to_owned());
                }
                parsed.prose.push(paragraph);
            }
        }
        parsed
    }
}

/// `Word:` or `Word word:` at the start, then a space.
fn starts_with_label(line: &str) -> bool {
    let Some((label, _)) = line.split_once(": ") else {
        return false;
    };
    let mut words = label.split(' ');
    let first = words.next().unwrap_or_default();
    let capitalized = first.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && first.chars().skip(1).all(|c| c.is_ascii_lowercase());
    let rest: Vec<&str> = words.collect();
    capitalized
        && rest.len() <= 1
        && rest
            .iter()
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()))
}

/// One text line of roff: escaped, and protected from being read as a request.
fn roff_line(text: &str) -> String {
    let escaped = roff_escape(text);
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}\n")
    } else {
        format!("{escaped}\n")
    }
}

/// Characters that roff would read as escapes, or typeset as something else than what is
/// typed: a backslash, the hyphen-minus (a hyphen otherwise), quotes, `~` and `^`.
fn roff_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '\'' => out.push_str("\\(aq"),
            '`' => out.push_str("\\(ga"),
            '~' => out.push_str("\\(ti"),
            '^' => out.push_str("\\(ha"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bash_repair_renames_only_the_case_arms() {
        let script = "cmd=\"udp__echo__subcmd__serve\"\n        udp__subcmd__echo__subcmd__serve)\n\
                      opts=\"udp__subcmd__echo__subcmd__x\"\n";
        assert_eq!(
            bash_case_names(script, "udp-echo"),
            "cmd=\"udp__echo__subcmd__serve\"\n        udp__echo__subcmd__serve)\n\
             opts=\"udp__subcmd__echo__subcmd__x\"\n"
        );
        assert_eq!(bash_case_names(script, "udpecho"), script);
    }

    #[test]
    fn after_help_is_sorted_into_sections() {
        let text = "Addresses: a\nb\nDurations: c\n\nExamples:\n  x serve   # one\n  x ping\n\n\
                    Exit status: 0 ok,\n1 not.";
        let parsed = AfterHelp::parse(text);
        assert_eq!(
            parsed.prose,
            [vec!["Addresses: a", "b"], vec!["Durations: c"]]
        );
        assert_eq!(
            parsed.examples,
            [
                ("x serve".to_owned(), Some("one".to_owned())),
                ("x ping".to_owned(), None)
            ]
        );
        assert_eq!(parsed.exit_status, ["0 ok,", "1 not."]);
    }

    #[test]
    fn roff_escapes_what_roff_would_read() {
        assert_eq!(
            roff_line(r"printf '\377' | x -"),
            "printf \\(aq\\e377\\(aq | x \\-\n"
        );
        assert_eq!(roff_line(".x"), "\\&.x\n");
        assert_eq!(ascii_only("a … b".into()), b"a \\[u2026] b");
    }
}
