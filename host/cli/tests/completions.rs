//! `udp-echo completions SHELL` driven in the shells themselves (bash, zsh, fish), and
//! `udp-echo manpage` rendered by groff. A test whose shell or groff is not installed says
//! so and passes; .ci/run installs them.

// The shells and groff: Unix only.
#![cfg(unix)]

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_udp-echo");
/// A shell that has not answered by then is stuck (zsh in its pseudo-terminal).
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The program's path on PATH, or `None` after saying the test is skipped.
fn installed(program: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!("skipped: {program} is not installed (.ci/run installs it)");
    }
    found
}

/// A directory of its own for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "udp-echo-completions-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd` to completion within PATIENCE (killed after it); stdout, and stderr too.
fn output(mut cmd: Command) -> (String, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + PATIENCE;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (out.join().unwrap(), err.join().unwrap())
}

/// `udp-echo ARGS`' stdout; it must succeed.
fn udp_echo(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("run udp-echo");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The script for `shell`, written into `dir` under `name`.
fn script(shell: &str, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, udp_echo(&["completions", shell])).unwrap();
    path
}

/// The subcommands, as `udp-echo --help` lists them (without `help`).
fn subcommands() -> Vec<String> {
    let help = udp_echo(&["--help"]);
    let commands = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands: section");
    commands
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_owned)
        .collect()
}

fn set(words: &[&str]) -> BTreeSet<String> {
    words.iter().map(|w| w.to_string()).collect()
}

// ---------------------------------------------------------------------------------------
// bash
// ---------------------------------------------------------------------------------------

/// What bash completes for `line` (the word under the cursor is the last one, empty after a
/// trailing space): the script is loaded as bash-completion loads it on demand (from
/// BASH_COMPLETION_USER_DIR/completions/udp-echo), or sourced when bash-completion is not
/// installed; then the function `complete -p udp-echo` names is called with COMP_WORDS and
/// COMP_CWORD set, as bash calls it on TAB.
fn bash_complete(bash: &Path, dir: &Path, line: &str) -> BTreeSet<String> {
    let driver = r#"
        if [ -r /usr/share/bash-completion/bash_completion ]; then
            . /usr/share/bash-completion/bash_completion
            # bash-completion 2.12 and later, or earlier (whose loader returns 124).
            if declare -F _comp_load >/dev/null; then _comp_load udp-echo
            else _completion_loader udp-echo; fi
        else
            . "$BASH_COMPLETION_USER_DIR/completions/udp-echo"
        fi
        spec=$(complete -p udp-echo) || { echo "no completion for udp-echo" >&2; exit 1; }
        fn=$(sed -E 's/.* -F ([^ ]+) .*/\1/' <<<"$spec")
        read -r -a COMP_WORDS <<<"$1"
        [[ $1 == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
        COMP_LINE=$1
        COMP_POINT=${#COMP_LINE}
        "$fn" udp-echo "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let mut cmd = Command::new(bash);
    cmd.args(["--norc", "--noprofile", "-c", driver, "bash", line])
        .env("BASH_COMPLETION_USER_DIR", dir)
        .current_dir(dir);
    let (out, err) = output(cmd);
    assert!(err.trim().is_empty(), "{line:?}: {err}");
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_after_a_subcommand() {
    let Some(bash) = installed("bash") else {
        return;
    };
    let dir = TempDir::new("bash");
    std::fs::create_dir(dir.path().join("completions")).unwrap();
    script("bash", &dir.path().join("completions"), "udp-echo");
    let complete = |line| bash_complete(&bash, dir.path(), line);

    assert_eq!(complete("udp-echo se"), set(&["serve", "send"]));
    assert_eq!(
        complete("udp-echo serve --i"),
        set(&["--interface", "--io"])
    );
    assert_eq!(
        complete("udp-echo serve --io "),
        set(&["batched", "simple"])
    );
    assert_eq!(complete("udp-echo -v ping --dead"), set(&["--deadline"]));
    let shells = complete("udp-echo completions ");
    assert!(
        set(&["bash", "zsh", "fish"]).is_subset(&shells),
        "{shells:?}"
    );
    assert_eq!(complete("udp-echo manpage se"), set(&["serve", "send"]));
    assert_eq!(complete("udp-echo help disc"), set(&["discover"]));
}

/// Every state the loop over the words can reach has its arm in the case that completes it
/// (clap issue #6421: with a hyphen in the binary's name, none had).
#[test]
fn the_bash_script_has_an_arm_for_every_state_it_names() {
    let script = udp_echo(&["completions", "bash"]);
    let states: BTreeSet<&str> = script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("cmd=\""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|s| !s.is_empty())
        .collect();
    let arms: BTreeSet<&str> = script
        .lines()
        .filter(|l| l.starts_with("        ") && !l.starts_with("         "))
        .filter_map(|l| l.trim().strip_suffix(')'))
        .collect();
    assert!(states.len() > 10, "{states:?}");
    let missing: Vec<_> = states.difference(&arms).collect();
    assert!(missing.is_empty(), "states without an arm: {missing:?}");
}

// ---------------------------------------------------------------------------------------
// zsh
// ---------------------------------------------------------------------------------------

/// Types `line` and TAB into an interactive `zsh -f` (in a pseudo-terminal, zsh/zpty) with
/// the script on fpath and compinit run; `compadd` is wrapped to print every match between
/// `<<` and `>>`, and the completion's pre- and post-functions print NUL bytes around them.
const ZSH_DRIVER: &str = r#"
zmodload zsh/zpty || exit 3
zpty z zsh -f -i
zpty -w z "fpath=(${(q)1} \$fpath)"
zpty -w z 'PROMPT= ; RPROMPT= ; PS2='
zpty -w z 'autoload -Uz compinit && compinit -u -D'
zpty -w z 'zstyle ":completion:*" list-grouped false; zstyle ":completion:*" insert-tab false'
zpty -w z 'bindkey "^I" complete-word'
zpty -w z 'null-line () { echo -E - $'"'"'\0'"'"' }; compprefuncs=( null-line ); comppostfuncs=( null-line exit )'
zpty -w z 'compadd () {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi
  typeset -a __hits; builtin compadd -A __hits "$@"; local ret=$?
  (( $#__hits )) || return $ret
  local h; for h in $__hits; do echo -E - "<<$h>>"; done
}'
zpty -w z "$2"$'\t'
integer seen=0
while zpty -r z line; do
  [[ $line == *$'\0'* ]] && { (( seen++ )) && break || continue; }
  (( seen )) && print -r -- $line
done
zpty -d z
"#;

fn zsh_complete(zsh: &Path, dir: &Path, line: &str) -> BTreeSet<String> {
    let mut cmd = Command::new(zsh);
    cmd.args(["-f", "-c", ZSH_DRIVER, "zsh"])
        .arg(dir)
        .arg(line)
        .env("HOME", dir)
        .current_dir(dir);
    let (out, _) = output(cmd);
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("<<"))
        .filter_map(|l| l.strip_suffix(">>"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn zsh_completes_after_a_subcommand() {
    let Some(zsh) = installed("zsh") else {
        return;
    };
    let dir = TempDir::new("zsh");
    script("zsh", dir.path(), "_udp-echo");
    let complete = |line| zsh_complete(&zsh, dir.path(), line);

    assert_eq!(complete("udp-echo se"), set(&["serve", "send"]));
    assert_eq!(
        complete("udp-echo serve --i"),
        set(&["--interface", "--io"])
    );
    assert_eq!(
        complete("udp-echo serve --io "),
        set(&["batched", "simple"])
    );
    assert_eq!(complete("udp-echo -v ping --dead"), set(&["--deadline"]));
    assert_eq!(
        complete("udp-echo completions "),
        set(&["bash", "elvish", "fish", "powershell", "zsh"])
    );
    let pages: Vec<String> = subcommands();
    let pages: BTreeSet<String> = pages.into_iter().collect();
    assert_eq!(complete("udp-echo manpage "), pages);
}

// ---------------------------------------------------------------------------------------
// fish
// ---------------------------------------------------------------------------------------

/// What `complete -C LINE` gives in fish with the script sourced: the candidates, without
/// their descriptions. Run in `dir`/work, so that offered files would show.
fn fish_complete(fish: &Path, script: &Path, dir: &Path, line: &str) -> BTreeSet<String> {
    let mut cmd = Command::new(fish);
    cmd.args(["--no-config", "-c"])
        .arg(r#"source $argv[1]; and complete -C $argv[2]"#)
        .arg(script)
        .arg(line)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env("XDG_DATA_HOME", dir)
        .current_dir(dir.join("work"));
    let (out, err) = output(cmd);
    assert!(err.trim().is_empty(), "{line:?}: {err}");
    out.lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn fish_completes_subcommands_options_and_values_not_files() {
    let Some(fish) = installed("fish") else {
        return;
    };
    let dir = TempDir::new("fish");
    let script = script("fish", dir.path(), "udp-echo.fish");
    std::fs::create_dir_all(dir.path().join("work/pages")).unwrap();
    std::fs::write(dir.path().join("work/bash-notes.txt"), "").unwrap();
    let complete = |line| fish_complete(&fish, &script, dir.path(), line);

    assert_eq!(complete("udp-echo se"), set(&["serve", "send"]));
    assert_eq!(
        complete("udp-echo serve --i"),
        set(&["--interface", "--io"])
    );
    assert_eq!(
        complete("udp-echo serve --io "),
        set(&["batched", "simple"])
    );
    assert_eq!(complete("udp-echo -v ping --dead"), set(&["--deadline"]));
    // The shells, not the files here.
    assert_eq!(
        complete("udp-echo completions "),
        set(&["bash", "elvish", "fish", "powershell", "zsh"])
    );
    assert_eq!(complete("udp-echo --json completions b"), set(&["bash"]));
    assert_eq!(complete("udp-echo completions bash "), set(&[]));
    let pages: BTreeSet<String> = subcommands().into_iter().collect();
    assert_eq!(complete("udp-echo manpage "), pages);
    assert_eq!(complete("udp-echo manpage --dir "), set(&["pages/"]));
    // Files never come after --dir's value.
    let after_dir = complete("udp-echo manpage --dir pages ");
    assert!(
        after_dir
            .iter()
            .all(|c| !c.contains("bash-notes") && !c.contains("pages")),
        "{after_dir:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Man pages
// ---------------------------------------------------------------------------------------

/// `groff -man -Tutf8` on one page, every warning on: the text, or a panic with groff's
/// complaints.
fn groff(groff: &Path, page: &Path) -> String {
    let mut cmd = Command::new(groff);
    cmd.args(["-man", "-Tutf8", "-ww", "-P-cbou"])
        .arg(page)
        .env("LC_ALL", "C.UTF-8");
    let (out, err) = output(cmd);
    assert!(err.is_empty(), "{}: groff says:\n{err}", page.display());
    assert!(!out.trim().is_empty(), "{}", page.display());
    out
}

/// The example commands of `udp-echo [SUBCOMMAND] --help`, one a line, comments left off.
fn examples(help: &str) -> Vec<String> {
    let Some(block) = help
        .split("\nExamples:\n")
        .nth(1)
        .or_else(|| help.split("\nExample:\n").nth(1))
    else {
        return Vec::new();
    };
    block
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split("  # ").next().unwrap().trim().to_owned())
        .collect()
}

#[test]
fn manpage_dir_writes_a_page_for_every_subcommand_and_each_renders_cleanly() {
    let dir = TempDir::new("man");
    let out = dir.path().join("man1");
    assert_eq!(udp_echo(&["manpage", "--dir", out.to_str().unwrap()]), "");
    let written: BTreeSet<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let subcommands = subcommands();
    assert!(subcommands.len() >= 9, "{subcommands:?}");
    let mut expected: BTreeSet<String> = subcommands
        .iter()
        .map(|s| format!("udp-echo-{s}.1"))
        .collect();
    expected.insert("udp-echo.1".to_owned());
    assert_eq!(written, expected);

    // `manpage SUBCOMMAND` prints the page --dir writes; `manpage` the top one.
    assert_eq!(
        udp_echo(&["manpage"]),
        std::fs::read_to_string(out.join("udp-echo.1")).unwrap()
    );
    for sub in &subcommands {
        let page = udp_echo(&["manpage", sub]);
        assert_eq!(
            page,
            std::fs::read_to_string(out.join(format!("udp-echo-{sub}.1"))).unwrap(),
            "{sub}"
        );
        assert!(
            page.contains(&format!(".TH udp-echo-{sub} 1")),
            "{sub}: {page}"
        );
    }
    // The top page refers to each subcommand's page.
    let top = std::fs::read_to_string(out.join("udp-echo.1")).unwrap();
    for sub in &subcommands {
        assert!(top.contains(&format!("udp\\-echo\\-{sub}(1)")), "{sub}");
    }

    let Some(groff_bin) = installed("groff") else {
        return;
    };
    for name in &written {
        let text = groff(&groff_bin, &out.join(name));
        // The examples keep their line breaks: each command is a line of its own, whole.
        let help = match name.as_str() {
            "udp-echo.1" => udp_echo(&["--help"]),
            _ => {
                let sub = &name["udp-echo-".len()..name.len() - 2];
                udp_echo(&[sub, "--help"])
            }
        };
        let examples = examples(&help);
        assert!(!examples.is_empty(), "{name}: no examples in --help");
        assert!(text.contains("\nEXAMPLES\n"), "{name}:\n{text}");
        let lines: BTreeSet<&str> = text.lines().map(str::trim).collect();
        for example in &examples {
            assert!(
                lines.contains(example.as_str()),
                "{name}: `{example}` is not a line of its own:\n{text}"
            );
        }
        assert!(!text.contains("\nEXTRA\n"), "{name}:\n{text}");
    }
}

#[test]
fn manpage_renders_with_man_too() {
    let Some(man) = installed("man") else {
        return;
    };
    let dir = TempDir::new("man-l");
    let page = dir.path().join("udp-echo-serve.1");
    std::fs::write(&page, udp_echo(&["manpage", "serve"])).unwrap();
    let mut cmd = Command::new(man);
    cmd.args(["--warnings", "-l"])
        .arg(&page)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "0")
        .env("LC_ALL", "C.UTF-8");
    let (out, err) = output(cmd);
    assert!(err.is_empty(), "man says:\n{err}");
    // Without the overstrikes of bold and underlined text.
    let mut text = String::new();
    for c in out.chars() {
        match c {
            '\u{8}' => {
                text.pop();
            }
            c => text.push(c),
        }
    }
    let out = text;
    assert!(out.contains("udp-echo-serve"), "{out}");
    assert!(out.contains("SEE ALSO"), "{out}");
}

#[test]
fn manpage_rejects_an_unknown_subcommand_and_dir_with_a_subcommand() {
    for args in [
        &["manpage", "nosuch"][..],
        &["manpage", "help"][..],
        &["manpage", "--dir", "/tmp/x", "serve"][..],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
