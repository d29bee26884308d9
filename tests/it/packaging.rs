//! What can be checked of the container image without a Docker engine: the runtime image ships
//! every shared library the binary links, the binary accepts the Dockerfile's entrypoint, its
//! HEALTHCHECK follows readiness, `hadolint` passes, the bases are pinned, the user is numeric,
//! and the build context is only what the Dockerfile copies (`.dockerignore`).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::support::*;

/// ENTRYPOINT, CMD (exec form) and ENV of the Dockerfile's last stage.
fn dockerfile() -> (Vec<String>, Vec<String>, HashMap<String, String>, String) {
    let text = fs::read_to_string(repo("Dockerfile")).unwrap();
    let last = text.rsplit("\nFROM ").next().unwrap().to_string();
    let json_list = |key: &str| -> Vec<String> {
        let line = last
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key}"));
        serde_json::from_str(line[key.len()..].trim()).expect("exec form")
    };
    let mut env = HashMap::new();
    for l in last.lines().filter(|l| l.starts_with("ENV ")) {
        let (k, v) = l[4..].split_once('=').unwrap();
        env.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
    }
    (json_list("ENTRYPOINT "), json_list("CMD "), env, last)
}

#[test]
fn runtime_image_provides_every_linked_library() {
    let (_, _, _, last) = dockerfile();
    let base = last.lines().next().unwrap();
    assert!(
        base.starts_with("debian:bookworm-") && base.ends_with("-slim"),
        "runtime base changed: update this test"
    );
    // What debian:bookworm-*-slim ships (libc6, libgcc-s1) plus the kernel's vDSO.
    let provided = [
        "linux-vdso.so.1",
        "libc.so.6",
        "libm.so.6",
        "libgcc_s.so.1",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
        "libresolv.so.2",
    ];
    let out = tool("ldd", &[BIN], Path::new("."));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ldd: {text}");
    for line in text.lines() {
        let name = line.split_whitespace().next().unwrap();
        let base = name.rsplit('/').next().unwrap();
        assert!(
            provided.contains(&base),
            "the binary links {base}, which debian:bookworm-slim does not ship"
        );
    }
    assert!(
        last.contains("USER "),
        "the runtime stage runs as a non-root user"
    );
    assert!(last.contains("VOLUME"), "config and certs are volumes");
}

#[test]
fn binary_runs_with_the_dockerfile_entrypoint_and_env() {
    let (entrypoint, cmd, env, _) = dockerfile();
    assert_eq!(entrypoint[0], "/usr/local/bin/rocgw");
    // The image's default: the config the hospital mounts at ROCGW_CONFIG. Missing → one clear line.
    let mut args: Vec<&str> = entrypoint[1..].iter().map(String::as_str).collect();
    args.extend(cmd.iter().map(String::as_str));
    let config = env.get("ROCGW_CONFIG").expect("ENV ROCGW_CONFIG");
    let out = run(&args, &[("ROCGW_CONFIG", config)]);
    if !Path::new(config).exists() {
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{config}: config file not found")),
            "{err}"
        );
    }
    // With a mounted config, the same arguments start the gateway.
    let tmp = scratch();
    let cfg = write_config(tmp.path(), &config_text("", ""));
    let p = Proc::start(&args, &[("ROCGW_CONFIG", cfg.to_str().unwrap())]);
    assert_eq!(http(p.admin, "GET", "/readyz", &[], b"").status, 200);
}

/// The HEALTHCHECK's command (exec form) of the Dockerfile, instruction continued over lines.
fn healthcheck() -> Vec<String> {
    let text = fs::read_to_string(repo("Dockerfile")).unwrap();
    let at = text.find("\nHEALTHCHECK ").expect("a HEALTHCHECK");
    let mut instr = String::new();
    for line in text[at + 1..].lines() {
        instr.push_str(line.trim_end_matches('\\'));
        if !line.ends_with('\\') {
            break;
        }
    }
    let cmd = instr.split(" CMD ").nth(1).expect("HEALTHCHECK … CMD");
    serde_json::from_str(cmd.trim()).expect("exec form")
}

/// Runs the HEALTHCHECK's command with the probe pointed at `url`: (exit code, stdout).
fn health(url: &str) -> (Option<i32>, String) {
    let cmd = healthcheck();
    let args: Vec<&str> = cmd[1..].iter().map(String::as_str).collect();
    let out = run(&args, &[("ROCGW_PROBE_URL", url)]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_healthcheck_probe_follows_readiness() {
    let (entrypoint, ..) = dockerfile();
    let cmd = healthcheck();
    assert_eq!(
        (cmd[0].as_str(), cmd[1].as_str()),
        (entrypoint[0].as_str(), "probe")
    );
    // Its default URL is the admin listener's default address.
    assert_eq!(
        rocgw::probe::DEFAULT_URL,
        format!("http://{}/readyz", rocgw::config::DEFAULT_ADMIN_LISTEN)
    );

    // A ready gateway: healthy.
    let tmp = scratch();
    let cfg = write_config(tmp.path(), &config_text("", ""));
    let gw = Proc::with_config(&cfg);
    let (code, out) = health(&format!("http://{}/readyz", gw.admin));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(": 200 ready"), "{out}");

    // A gateway that runs but is not ready (a stale CRL under the hard policy): unhealthy, with
    // the reason; its liveness URL still answers.
    let d = scratch();
    stale_crl(d.path());
    let p = |r: &str| pki_path(r).display().to_string();
    let text = base_config(
        &p("org/auth_cli.p12"),
        &p("secrets/p12-password"),
        "",
        &format!("crls = [\"{}\"]", d.path().join("stale.crl").display()),
    )
    .replace(
        &format!("amc_anchors = [\"{}\"]", p("osi/anchors.pem")),
        &format!(
            "amc_anchors = [\"{}\", \"{}\"]",
            p("osi/anchors.pem"),
            d.path().join("ca.pem").display()
        ),
    ) + "\n[amc]\nrevocation = \"hard\"\n";
    let stale = Proc::with_config(&write_config(d.path(), &text));
    let (code, out) = health(&format!("http://{}/readyz", stale.admin));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(": 503 not ready:") && out.contains("stale.crl"),
        "{out}"
    );
    let (code, out) = health(&format!("http://{}/healthz", stale.admin));
    assert_eq!(code, Some(0), "{out}");

    // Nobody listening: unhealthy.
    let addr = format!("127.0.0.1:{}", free_port());
    let (code, out) = health(&format!("http://{addr}/readyz"));
    assert_eq!(code, Some(1), "{out}");
    // A listener that never answers: unhealthy once the deadline passes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/readyz", silent.local_addr().unwrap());
    let out = run(&["probe", "--url", &url, "--timeout-ms", "300"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("no answer within 300 ms"), "{text}");
}

/// The `hadolint` command (`.ci/run` installs it in its venv and names it in ROCGW_HADOLINT).
fn hadolint(file: &Path) -> std::process::Output {
    let venv = repo("target/ci-venv/bin/hadolint");
    let path = match std::env::var("ROCGW_HADOLINT") {
        Ok(p) => std::path::PathBuf::from(p),
        Err(_) if venv.exists() => venv,
        Err(_) => std::path::PathBuf::from("hadolint"),
    };
    tool(
        path.to_str().unwrap(),
        &[file.to_str().unwrap()],
        Path::new("."),
    )
}

#[test]
fn the_dockerfile_passes_hadolint_pins_its_bases_and_runs_as_a_number() {
    let file = repo("Dockerfile");
    let text = fs::read_to_string(&file).unwrap();
    let out = hadolint(&file);
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    // hadolint does look: an untagged base fails.
    let tmp = scratch();
    let broken = tmp.path().join("Dockerfile");
    fs::write(
        &broken,
        text.replace("FROM debian:bookworm-", "FROM debian\n#"),
    )
    .unwrap();
    assert!(!hadolint(&broken).status.success());

    // Versioned tags: the toolchain the project builds with, a dated Debian image.
    let froms: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    let rust = froms[0].strip_prefix("rust:").expect("a rust: build stage");
    assert!(
        rust.starts_with("1.95.") && rust.ends_with("-bookworm"),
        "{rust}"
    );
    let debian = froms[1].strip_prefix("debian:bookworm-").expect("debian");
    let date = debian.strip_suffix("-slim").expect("slim");
    assert!(
        date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()),
        "a dated tag: {debian}"
    );
    assert!(text.contains(&format!("base.name=\"docker.io/library/{}\"", froms[1])));

    // Numeric user and group, the ones the Kubernetes manifest runs as.
    let user = text
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .unwrap();
    assert_eq!(user, "10001:10001");
    let manifest = fs::read_to_string(repo("deploy/kubernetes/rocgw.yaml")).unwrap();
    assert!(manifest.contains("runAsUser: 10001") && manifest.contains("runAsGroup: 10001"));

    // OCI labels, with the crate's version and licence.
    for key in ["title", "description", "version", "revision", "licenses"] {
        assert!(
            text.contains(&format!("org.opencontainers.image.{key}=")),
            "label {key}"
        );
    }
    assert!(text.contains(&format!("ARG VERSION={}", env!("CARGO_PKG_VERSION"))));
    let cargo = fs::read_to_string(repo("Cargo.toml")).unwrap();
    let license = cargo
        .lines()
        .find_map(|l| l.strip_prefix("license = "))
        .unwrap();
    assert!(text.contains(&format!("org.opencontainers.image.licenses={license}")));

    // The dependency layer: built from the manifests alone, before the sources are copied.
    let deps = text.find("COPY Cargo.toml Cargo.lock ./").unwrap();
    let first_build = text.find("cargo build").unwrap();
    let sources = text.find("COPY src ./src").unwrap();
    assert!(deps < first_build && first_build < sources);
}

/// Docker's `.dockerignore` rule for one path: the last pattern that matches the path or one of
/// its parent folders decides (`!` re-includes); `*` stays within a name, `**` spans folders.
fn docker_ignores(patterns: &[(bool, Vec<String>)], path: &str) -> bool {
    fn glob(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
            (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn segments(p: &[String], s: &[&str]) -> bool {
        match p.first().map(String::as_str) {
            None => s.is_empty(),
            Some("**") => (0..=s.len()).any(|i| segments(&p[1..], &s[i..])),
            Some(seg) => {
                !s.is_empty() && glob(seg.as_bytes(), s[0].as_bytes()) && segments(&p[1..], &s[1..])
            }
        }
    }
    let parts: Vec<&str> = path.split('/').collect();
    let mut ignored = false;
    for (include, pattern) in patterns {
        if (1..=parts.len()).any(|n| segments(pattern, &parts[..n])) {
            ignored = !include;
        }
    }
    ignored
}

/// Every file of the repository, skipping `target` folders and `.git`.
fn repo_files(dir: &Path, rel: &str, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            if name != "target" && name != ".git" {
                repo_files(&e.path(), &path, out);
            }
        } else {
            out.push(path);
        }
    }
}

#[test]
fn the_docker_build_context_is_what_the_dockerfile_copies() {
    let ignore = fs::read_to_string(repo(".dockerignore")).unwrap();
    let patterns: Vec<(bool, Vec<String>)> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (include, p) = match l.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, l),
            };
            let p = p.trim_start_matches('/').trim_end_matches('/');
            (include, p.split('/').map(str::to_string).collect())
        })
        .collect();
    let ignored = |p: &str| docker_ignores(&patterns, p);
    // Gigabytes of build output, the history, and anything secret stay out, wherever it sits.
    for p in [
        "target/release/rocgw",
        ".git/HEAD",
        "fuzz/target/x",
        "certs/auth_cli.p12",
        "src/sign.p12",
        "src/org.key",
        "src/auth_cli.pass",
        "rocgw-sandbox/pki/org/sign.p12",
        "tests/it/main.rs",
    ] {
        assert!(ignored(p), "{p} goes into the build context");
    }
    // What the Dockerfile copies goes in, and nothing else of the repository.
    let dockerfile = fs::read_to_string(repo("Dockerfile")).unwrap();
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w[..w.len() - 1].to_vec()
        })
        .collect();
    assert_eq!(copied, ["Cargo.toml", "Cargo.lock", "build.rs", "src"]);
    let mut files = Vec::new();
    repo_files(Path::new(env!("CARGO_MANIFEST_DIR")), "", &mut files);
    assert!(files.len() > 100);
    for f in &files {
        let needed = copied
            .iter()
            .any(|c| f == c || f.starts_with(&format!("{c}/")));
        assert_eq!(!ignored(f), needed, "{f}");
    }
}
