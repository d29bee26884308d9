//! `rocgw completions SHELL` and `rocgw man`: generated from the command definitions
//! (clap_complete, clap_mangen), so they cannot drift from `--help`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Args, CommandFactory as _};
use clap_complete::Shell;

use super::Cli;

/// `rocgw completions` options.
#[derive(Debug, Args)]
pub struct DocsArgs {
    /// The shell: install the script where it loads completions, e.g.
    /// `rocgw completions bash > /etc/bash_completion.d/rocgw`.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints the completion script of `a.shell`.
pub fn completions(a: &DocsArgs) -> ExitCode {
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut Cli::command(), "rocgw", &mut out);
    write_out(&out)
}

/// `rocgw man` options.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command into this folder (rocgw.1, rocgw-serve.1, rocgw-cert-csr.1…,
    /// the pages the main one refers to) instead of printing the main page.
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

/// The manual page of `rocgw` (roff): synopsis, options, commands, version.
pub fn man_page() -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| format!("man page: {e}"))?;
    Ok(out)
}

/// Prints the main manual page, or writes every page into `--dir`.
pub fn man(a: &ManArgs) -> ExitCode {
    let done = match &a.dir {
        None => man_page().map(|page| write_out(&page)),
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| format!("man --dir {}: {e}", dir.display())),
    };
    done.unwrap_or_else(|e| {
        eprintln!("rocgw: {e}");
        ExitCode::from(2)
    })
}

fn write_out(bytes: &[u8]) -> ExitCode {
    let mut o = std::io::stdout().lock();
    match o.write_all(bytes).and_then(|()| o.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rocgw: cannot write on stdout: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command and every argument says what it is for in `--help` (and so in the man
    /// page and the completions' descriptions).
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.get_about().is_none() && path != "rocgw" {
                missing.push(format!("{path}: no about"));
            }
            for a in cmd.get_arguments() {
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "rocgw", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:?}");
        // The walk reaches the options of the nested commands.
        let csr = cmd
            .find_subcommand("cert")
            .and_then(|c| c.find_subcommand("csr"))
            .expect("cert csr");
        assert!(csr.get_arguments().any(|a| a.get_id() == "bits"));
        assert!(cmd.get_about().is_some());
    }
}
