//! What this binary is: the package version and the git commit it was built from (`build.rs`;
//! `unknown` when built without `.git`, e.g. from a tarball or a Docker context).

/// The short git commit, or `unknown`.
pub const COMMIT: &str = match option_env!("ROCGW_GIT_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// The package version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `0.1.0 (commit abc1234)`: what `--version` prints after the name, and the load report.
pub fn long() -> &'static str {
    static LONG: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("{VERSION} (commit {COMMIT})"));
    LONG.as_str()
}
