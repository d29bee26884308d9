//! What can be checked of the container image without a Docker engine: the runtime image ships
//! every shared library the binary links, and the binary accepts the Dockerfile's entrypoint.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::support::*;

/// ENTRYPOINT, CMD (exec form) and ENV of the Dockerfile's last stage.
fn dockerfile() -> (Vec<String>, Vec<String>, HashMap<String, String>, String) {
    let text =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
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
    assert!(
        last.starts_with("debian:bookworm-slim") || last.contains("debian:bookworm-slim"),
        "runtime base changed: update this test"
    );
    // What debian:bookworm-slim ships (libc6, libgcc-s1) plus the kernel's vDSO.
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
