//! The command line as an operator meets it: `rocgw check` (serve's loading code, no listener),
//! shell completions, the man page, `--version` with the commit, and `--help` saying what a
//! bare `rocgw` does.

use std::process::Command;

use crate::support::*;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn check_exits_0_on_a_good_configuration_and_2_with_serves_line_on_a_bad_one() {
    let tmp = scratch();
    // A good file whose gateway port is taken: check opens no listener, so it does not care.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let text = config_text("", "").replace(
        "listen = \"127.0.0.1:0\"\nadmin",
        &format!("listen = \"{}\"\nadmin", busy.local_addr().unwrap()),
    );
    assert!(text.contains(&busy.local_addr().unwrap().to_string()));
    let good = write_config(tmp.path(), &text);
    let out = run(&["check", "--config", good.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "rocgw check: {}: configuration OK, serve would start",
            good.display()
        )),
        "{}",
        stdout(&out)
    );
    // It loaded the credentials as serve does (their start-up report is logged).
    assert!(stderr(&out).contains("identity loaded"), "{}", stderr(&out));

    // A bad one: an expired SIGN certificate. Exit 2 and the very line serve prints.
    let bad_dir = scratch();
    let text = with_identity("sign", "negative/sign-expired.p12");
    let bad = write_config(bad_dir.path(), &text);
    let checked = run(&["check", "--config", bad.to_str().unwrap()], &[]);
    let served = run(&["serve", "--config", bad.to_str().unwrap()], &[]);
    assert_eq!(checked.status.code(), Some(2));
    assert_eq!(served.status.code(), Some(2));
    let fatal = |o: &std::process::Output| {
        stderr(o)
            .lines()
            .filter(|l| l.starts_with("rocgw: error: "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(fatal(&checked).len(), 1, "{}", stderr(&checked));
    assert_eq!(fatal(&checked), fatal(&served));
    assert!(fatal(&checked)[0].contains("identity.sign: certificate expired on"));
    assert!(!stdout(&checked).contains("configuration OK"));

    // Nothing to check: no file given and none at the default path.
    if !std::path::Path::new("/etc/rocgw/rocgw.toml").exists() {
        let none = run(&["check"], &[]);
        assert_eq!(none.status.code(), Some(2));
        assert!(
            stderr(&none).contains("no configuration to check"),
            "{}",
            stderr(&none)
        );
    }
}

#[test]
fn bash_completions_offer_the_subcommands() {
    let out = run(&["completions", "bash"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let script = stdout(&out);
    for sub in [
        "serve",
        "check",
        "sim",
        "load",
        "cert",
        "completions",
        "man",
    ] {
        assert!(script.contains(sub), "{sub} missing");
    }
    // bash itself loads it and registers the completion of `rocgw`.
    let tmp = scratch();
    let file = tmp.path().join("rocgw.bash");
    std::fs::write(&file, &script).unwrap();
    let bash = Command::new("bash")
        .args([
            "-c",
            &format!("source {} && complete -p rocgw", file.display()),
        ])
        .output()
        .unwrap();
    assert!(bash.status.success(), "{}", stderr(&bash));
    assert!(stdout(&bash).contains("rocgw"), "{}", stdout(&bash));
    // An unknown shell is a usage error.
    assert_eq!(run(&["completions", "cmd.exe"], &[]).status.code(), Some(2));
}

#[test]
fn the_man_page_is_roff_that_groff_renders_without_warnings() {
    let out = run(&["man"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.contains(".TH rocgw 1"), "{page}");
    assert!(page.contains(".SH NAME") && page.contains(".SH SYNOPSIS"));
    // groff (`.ci/run` installs it) as the oracle: it parses the page, warns about nothing.
    let tmp = scratch();
    let file = tmp.path().join("rocgw.1");
    std::fs::write(&file, &page).unwrap();
    let g = Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("groff (`bash .ci/run` installs it): {e}"));
    assert!(g.status.success(), "{}", stderr(&g));
    assert_eq!(stderr(&g), "", "groff warnings");
    let text = stdout(&g);
    assert!(text.contains("rocgw-check(1)"), "{text}");
    assert!(text.contains("SANDBOX"), "the bare rocgw note: {text}");
    // --dir writes every page the main one refers to.
    let dir = tmp.path().join("man1");
    let out = run(&["man", "--dir", dir.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for page in [
        "rocgw.1",
        "rocgw-check.1",
        "rocgw-cert-csr.1",
        "rocgw-load.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.contains(".TH "), "{page}");
    }
}

#[test]
fn version_names_the_commit_and_help_says_what_a_bare_rocgw_does() {
    let out = run(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let line = stdout(&out).trim().to_string();
    let commit = line
        .strip_prefix(&format!("rocgw {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line}"));
    // The commit of the source built, when it is a git checkout (as here and in CI).
    let git = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match git {
        Ok(g) if g.status.success() => {
            assert_eq!(commit, String::from_utf8_lossy(&g.stdout).trim(), "{line}")
        }
        _ => assert_eq!(commit, "unknown", "{line}"),
    }

    let help = stdout(&run(&["--help"], &[]));
    assert!(
        help.contains("Without a command, rocgw runs `rocgw serve`")
            && help.contains("else the SANDBOX"),
        "{help}"
    );
}
