//! `completions SHELL` and `man`, as a user installs them: the bash script sourced by bash and
//! asked to complete, the man page rendered by `man -l` (and its roff read line by line).

mod simkit;

use std::path::Path;
use std::process::{Command, Output};

use simkit::binary::BIN;

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What bash completes for the words of `line` (the last one being completed), with the
/// script sourced as `/etc/bash_completion.d` would.
fn bash_completes(script: &Path, line: &[&str]) -> Vec<String> {
    let words: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    let cword = line.len() - 1;
    let (cur, prev) = (line[cword], line[cword - 1]);
    let program = format!(
        r#"source '{script}'
complete -p activegate-lifecycle >&2
COMP_WORDS=({words})
COMP_CWORD={cword}
"$(complete -p activegate-lifecycle | sed -E 's/.* -F ([^ ]+) .*/\1/')" activegate-lifecycle '{cur}' '{prev}'
printf '%s\n' "${{COMPREPLY[@]}}""#,
        script = script.display(),
        words = words.join(" "),
    );
    let o = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .expect("bash runs");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("-F _activegate__lifecycle"),
        "the script registers its function: {}",
        stderr(&o)
    );
    stdout(&o).lines().map(str::to_owned).collect()
}

#[test]
fn bash_sources_the_completion_script_and_completes_commands_and_their_options() {
    let o = run(&["completions", "bash"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("activegate-lifecycle.bash");
    std::fs::write(&script, &o.stdout).expect("write the script");

    assert_eq!(
        bash_completes(&script, &["activegate-lifecycle", "r"]),
        ["run", "rollout", "rollback"]
    );
    let all = bash_completes(&script, &["activegate-lifecycle", ""]);
    for command in ["translate", "run", "status", "demo", "completions", "man"] {
        assert!(all.iter().any(|c| c == command), "{command} in {all:?}");
    }
    let shells = bash_completes(&script, &["activegate-lifecycle", "completions", ""]);
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        assert!(shells.iter().any(|c| c == shell), "{shell} in {shells:?}");
    }
    // After a command, its own options (what clap_complete's hyphenated-name bug broke).
    assert_eq!(
        bash_completes(&script, &["activegate-lifecycle", "run", "--c"]),
        ["--config"]
    );
    assert_eq!(
        bash_completes(&script, &["activegate-lifecycle", "check-config", "--c"]),
        ["--config"]
    );
    let run_options = bash_completes(&script, &["activegate-lifecycle", "run", "--"]);
    assert!(
        run_options.iter().any(|o| o == "--no-initial-run"),
        "{run_options:?}"
    );
}

#[test]
fn every_shell_gets_a_script_that_names_the_program() {
    for (shell, marker, checker) in [
        ("zsh", "#compdef activegate-lifecycle", Some(("zsh", "-n"))),
        (
            "fish",
            "complete -c activegate-lifecycle",
            Some(("fish", "-n")),
        ),
        (
            "elvish",
            "edit:completion:arg-completer[activegate-lifecycle]",
            None,
        ),
        ("powershell", "Register-ArgumentCompleter", None),
    ] {
        let o = run(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("rollout"), "{shell}: {script}");
        // The shell itself parses it, where it is installed.
        if let Some((program, flag)) = checker.filter(|(p, _)| have(p)) {
            let dir = tempfile::tempdir().expect("temp dir");
            let file = dir.path().join(shell);
            std::fs::write(&file, &script).expect("write");
            let c = Command::new(program)
                .arg(flag)
                .arg(&file)
                .output()
                .expect("the shell runs");
            assert!(c.status.success(), "{shell}: {}", stderr(&c));
        }
    }
}

#[test]
fn an_unknown_shell_is_bad_input_that_lists_the_shells() {
    let o = run(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("tcsh") && e.contains("bash") && e.contains("powershell"),
        "{e}"
    );
}

/// The macros a clap_mangen page may use, and the roff requests it writes.
const ROFF: &[&str] = &[
    ".TH", ".SH", ".SS", ".TP", ".PP", ".IP", ".RS", ".RE", ".br", ".sp", ".B", ".I", ".BR", ".IR",
    ".ie", ".el", ".ds", ".nf", ".fi",
];

/// Reads the roff line by line: every request is a known one, the page has a title and the
/// sections a man page has, font changes are closed.
fn check_roff(page: &str, sections: &[&str]) {
    let mut seen = Vec::new();
    for (n, line) in page.lines().enumerate() {
        if let Some(rest) = line.strip_prefix('.') {
            let request = format!(".{}", rest.split_whitespace().next().unwrap_or(""));
            assert!(
                ROFF.contains(&request.as_str()) || line.starts_with(".\\\""),
                "line {}: unknown request `{line}`",
                n + 1
            );
            if request == ".SH" {
                seen.push(rest.trim_start_matches("SH").trim().to_owned());
            }
        }
        let opened = line.matches("\\fB").count() + line.matches("\\fI").count();
        let closed = line.matches("\\fR").count() + line.matches("\\fP").count();
        assert!(
            opened <= closed,
            "line {}: a font change left open: {line}",
            n + 1
        );
    }
    assert!(
        page.lines().any(|l| l.starts_with(".TH ")),
        "no title: {page}"
    );
    for s in sections {
        assert!(seen.iter().any(|x| x == s), "no {s} section in {seen:?}");
    }
}

/// `man -l` renders the page; with --warnings groff reports what it cannot format.
fn render(page: &Path) -> String {
    let o = Command::new("man")
        .args(["--warnings", "-E", "UTF-8", "-l", "-P", "cat"])
        .arg(page)
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("man runs");
    assert!(o.status.success(), "man -l: {}", stderr(&o));
    assert_eq!(stderr(&o), "", "groff warned");
    stdout(&o)
}

#[test]
fn the_man_page_is_roff_that_man_renders() {
    let o = run(&["man"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = stdout(&o);
    check_roff(
        &page,
        &[
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "SUBCOMMANDS",
            "VERSION",
        ],
    );
    if !have("man") {
        eprintln!(
            "SKIPPED: man -l: man is not installed (apt-get install man-db); the roff was read"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("activegate-lifecycle.1");
    std::fs::write(&file, &page).expect("write");
    let text = render(&file);
    // NAME, as `man` justifies it.
    let name: Vec<&str> = text
        .lines()
        .skip_while(|l| l.trim() != "NAME")
        .nth(1)
        .expect("a line after NAME")
        .split_whitespace()
        .collect();
    assert_eq!(
        name[..4],
        ["activegate-lifecycle", "-", "Keeps", "Dynatrace"],
        "{text}"
    );
    for command in [
        "activegate-lifecycle-run(1)",
        "activegate-lifecycle-completions(1)",
        "activegate-lifecycle-man(1)",
    ] {
        assert!(text.contains(command), "{command} in:\n{text}");
    }
}

#[test]
fn man_dir_writes_a_page_per_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = run(&["man", "--dir", dir.path().to_str().expect("UTF-8")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    for name in [
        "activegate-lifecycle.1",
        "activegate-lifecycle-run.1",
        "activegate-lifecycle-rollout.1",
        "activegate-lifecycle-completions.1",
        "activegate-lifecycle-man.1",
    ] {
        assert!(dir.path().join(name).is_file(), "{name}");
    }
    let run_page = dir.path().join("activegate-lifecycle-run.1");
    let page = std::fs::read_to_string(&run_page).expect("read");
    check_roff(&page, &["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS"]);
    if have("man") {
        let text = render(&run_page);
        assert!(
            text.contains("--config") && text.contains("--no-initial-run"),
            "{text}"
        );
    }
    let o = run(&["man", "--dir", "/nonexistent/pages"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot write the man pages into /nonexistent/pages"),
        "{}",
        stderr(&o)
    );
}
