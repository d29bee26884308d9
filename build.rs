//! Build script: the git commit for `rocgw --version` (and the load report).
//!
//! `ROCGW_GIT_COMMIT` wins when set (a Docker build without `.git` can pass it as a build
//! argument); else `git rev-parse --short HEAD` when the source is a git checkout; else nothing
//! and the binary says `unknown`. No dependency: only `std::process::Command`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ROCGW_GIT_COMMIT");
    let commit = match std::env::var("ROCGW_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => Some(c.trim().to_string()),
        _ => git(&["rev-parse", "--short", "HEAD"]),
    };
    if let Some(c) = commit {
        println!("cargo:rustc-env=ROCGW_GIT_COMMIT={c}");
        // Built again when HEAD moves: HEAD itself, the branch it names, the packed refs.
        let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
        watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
        for w in watched {
            if let Some(p) = git(&["rev-parse", "--git-path", &w]) {
                if Path::new(&p).exists() {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
        }
    }
}
