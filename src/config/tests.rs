//! The configuration's unit tests: one file's errors name the file and the field.

use std::path::PathBuf;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(
        text,
        Path::new("/etc/rocgw/rocgw.toml"),
        &Overrides::default(),
    )
}

/// A folder holding the files the required sections name (only their being readable files is
/// checked here), and those sections; `name` keeps tests that run at once apart.
fn scratch(name: &str) -> (PathBuf, &'static str) {
    let dir = std::env::temp_dir().join(format!("rocgw-cfg-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["a.p12", "s.p12", "anchor.pem"] {
        std::fs::write(dir.join(f), "x").unwrap();
    }
    std::fs::write(dir.join("pw"), "P12-Secret-Value\n").unwrap();
    let required = "[identity.auth_cli]\np12 = \"a.p12\"\npassword_file = \"pw\"\n\
                    [identity.sign]\np12 = \"s.p12\"\npassword_file = \"pw\"\n\
                    [trust]\namc_anchors = [\"anchor.pem\"]\n";
    (dir, required)
}

fn parse_in(dir: &Path, text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, &dir.join("rocgw.toml"), &Overrides::default())
}

#[test]
fn local_listener_options_are_checked() {
    let e = parse("[server]\nunix_socket = \"/run/x.sock\"\nunix_socket_mode = \"0666\"\n")
        .unwrap_err();
    assert_eq!(e.field, "server.unix_socket_mode");
    let e = parse("[server.tls]\ncert = \"c\"\nkey = \"k\"\nclient_ca = []\n").unwrap_err();
    assert_eq!(e.field, "server.tls.client_ca");
    let e = parse("[server]\nmax_header_bytes = 100\n").unwrap_err();
    assert_eq!(e.field, "server.max_header_bytes");
    let e = parse("[access]\n[[access.callers]]\nname = \"a b\"\ntoken_env = \"X\"\n").unwrap_err();
    assert_eq!(e.field, "access.callers[0].name");
    let e =
        parse("[access]\n[[access.callers]]\nname = \"token\"\ntoken_env = \"X\"\n").unwrap_err();
    assert_eq!(e.field, "access.callers[0].name");
    let e = parse("[access]\nunix_uids = [1000]\n").unwrap_err();
    assert_eq!(e.field, "access.unix_uids");
}

#[test]
fn unknown_keys_name_the_field() {
    let e = parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
    assert_eq!(e.field, "server.lisen");
    assert!(e.message.contains("lisen"), "{e}");
    assert!(e.to_string().starts_with("/etc/rocgw/rocgw.toml: "), "{e}");
}

#[test]
fn bad_values_name_the_field() {
    let e = parse("[server]\nlisten = \"nope\"\n").unwrap_err();
    assert_eq!(e.field, "server.listen");
    let e = parse("[server]\nhttp_status = \"loose\"\n").unwrap_err();
    assert_eq!(e.field, "server.http_status");
}

#[test]
fn inline_secrets_are_refused() {
    let e = parse("[identity.sign]\np12 = \"x.p12\"\npassword = \"hunter2\"\n").unwrap_err();
    assert_eq!(e.field, "identity.sign.password");
    assert!(!e.to_string().contains("hunter2"));
}

#[test]
fn missing_identity_file_names_field_and_path() {
    let e = parse("[identity.auth_cli]\np12 = \"/nonexistent/a.p12\"\npassword_env = \"X\"\n")
        .unwrap_err();
    assert_eq!(e.field, "identity.auth_cli.p12");
    assert_eq!(e.message, "file not found: /nonexistent/a.p12");
}

#[test]
fn non_loopback_without_caller_check_is_refused() {
    let e = parse("[server]\nlisten = \"0.0.0.0:8580\"\n").unwrap_err();
    assert_eq!(e.field, "server.listen");
    assert!(e.message.contains("caller check"), "{e}");
}

#[test]
fn debug_output_never_shows_secrets() {
    let (dir, required) = scratch("secrets");
    std::fs::write(dir.join("tok"), "Token-Secret-Value-0123456789").unwrap();
    std::fs::write(dir.join("tok2"), "Caller-Secret-Value-0123456789").unwrap();
    let text = format!(
        "[access]\ntoken_file = \"tok\"\n\
         [[access.callers]]\nname = \"dpi\"\ntoken_file = \"tok2\"\n{required}"
    );
    let cfg = parse_in(&dir, &text).unwrap();
    let IdentitySource::P12 { password, .. } = &cfg.identities.structures[0].sign else {
        panic!("p12 expected")
    };
    assert_eq!(
        password.as_str(),
        "P12-Secret-Value",
        "trailing newline trimmed"
    );
    let dbg = format!("{cfg:?}");
    assert!(
        !dbg.contains("P12-Secret-Value")
            && !dbg.contains("Token-Secret-Value")
            && !dbg.contains("Caller-Secret-Value"),
        "{dbg}"
    );
    assert!(dbg.contains("<redacted>") && dbg.contains("dpi"), "{dbg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_proxy_rules_match_names_suffixes_and_networks() {
    let p = ProxyConfig {
        host: "proxy".into(),
        port: 3128,
        credentials: None,
        no_proxy: vec![
            "localhost".into(),
            ".hopital.example".into(),
            "10.0.0.0/8".into(),
        ],
    };
    assert!(p.bypass("localhost"));
    assert!(p.bypass("LOCALHOST"));
    assert!(p.bypass("ws.hopital.example"));
    assert!(p.bypass("hopital.example"));
    assert!(!p.bypass("nothopital.example"));
    assert!(p.bypass("10.2.3.4"));
    assert!(!p.bypass("11.2.3.4"));
    assert!(!p.bypass("amc.example"));
}

#[test]
fn proxy_url_must_be_http_without_credentials() {
    let e = parse("[proxy]\nurl = \"http://u:p@proxy:3128\"\n").unwrap_err();
    assert_eq!(e.field, "proxy.url");
    assert!(!e.to_string().contains("u:p"), "{e}");
    let e = parse("[proxy]\nurl = \"https://proxy:3128\"\n").unwrap_err();
    assert_eq!(e.field, "proxy.url");
}

#[test]
fn numbers_out_of_range_are_refused_never_clamped() {
    let (dir, required) = scratch("range");
    let file = dir.join("rocgw.toml");
    for (section, setting, range) in [
        // Formerly clamped to 1..=3600.
        ("amc", "breaker_open_s = 0", "1 and 3600"),
        ("amc", "breaker_open_s = 1000000", "1 and 3600"),
        // Formerly unchecked.
        ("amc", "breaker_failures = 1001", "0 and 1000"),
        ("upstream", "max_response_bytes = 0", "1024 and 1073741824"),
        (
            "upstream",
            "max_connections_per_host = 1000000000",
            "1 and 100000",
        ),
        ("assertion", "not_before_skew_s = 86400", "0 and 3600"),
        ("reload", "check_interval_s = 86401", "0 and 86400"),
        // Formerly checked with a message of their own.
        ("upstream", "connect_timeout_ms = 0", "1 and 600000"),
        ("assertion", "validity_s = 3601", "1 and 3600"),
        ("annuaire", "cache_ttl_s = 0", "1 and 2592000"),
    ] {
        let mut text = format!("{required}[{section}]\n{setting}\n");
        if section == "annuaire" {
            text.push_str("url = \"https://annuaire.example/\"\n");
        }
        let e = parse_in(&dir, &text).unwrap_err();
        let key = setting.split(' ').next().unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: {section}.{key}: must be between {range}",
                file.display()
            )
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn numbers_at_their_bounds_are_accepted() {
    let (dir, required) = scratch("bounds");
    let at = |server: u64, amc: (u64, u64), upstream: (u64, u64), skew: u64, reload: u64| {
        let text = format!(
            "{required}[server]\nmax_headers = {server}\n\
             [amc]\nbreaker_failures = {}\nbreaker_open_s = {}\n\
             [upstream]\nmax_response_bytes = {}\nmax_connections_per_host = {}\n\
             [assertion]\nvalidity_s = 3600\nnot_before_skew_s = {skew}\nreuse_s = 1800\n\
             [reload]\ncheck_interval_s = {reload}\n",
            amc.0, amc.1, upstream.0, upstream.1
        );
        parse_in(&dir, &text).unwrap_or_else(|e| panic!("{e}"))
    };
    let low = at(8, (0, 1), (1024, 1), 0, 0);
    assert_eq!(low.server.limits.max_headers, 8);
    assert_eq!(low.amc.breaker_failures, 0);
    assert_eq!(low.amc.breaker_open, Duration::from_secs(1));
    assert_eq!(low.upstream.max_response_bytes, 1024);
    assert_eq!(low.upstream.max_connections_per_host, 1);
    assert_eq!(low.assertion.not_before_skew, Duration::ZERO);
    assert_eq!(low.reload_check_interval_s, 0);
    let high = at(1_000, (1_000, 3_600), (1 << 30, 100_000), 3_600, 86_400);
    assert_eq!(high.server.limits.max_headers, 1_000);
    assert_eq!(high.amc.breaker_failures, 1_000);
    assert_eq!(high.amc.breaker_open, Duration::from_secs(3_600));
    assert_eq!(high.upstream.max_response_bytes, 1 << 30);
    assert_eq!(high.upstream.max_connections_per_host, 100_000);
    assert_eq!(high.assertion.not_before_skew, Duration::from_secs(3_600));
    assert_eq!(high.assertion.reuse, Duration::from_secs(1_800));
    assert_eq!(high.reload_check_interval_s, 86_400);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two structures in the `[structures.*]` form (files from `scratch`), plus `extra`.
fn two_structures(dir: &Path, extra: &str) -> Result<Config, ConfigError> {
    let s = |id: &str, default: bool| {
        format!(
            "[structures.\"{id}\"]\ndefault = {default}\n\
             auth_cli = {{ p12 = \"a.p12\", password_file = \"pw\" }}\n\
             sign = {{ p12 = \"s.p12\", password_file = \"pw\" }}\n"
        )
    };
    let text = format!(
        "{}{}[trust]\namc_anchors = [\"anchor.pem\"]\n{extra}",
        s("1990000012", true),
        s("1990000020", false)
    );
    parse_in(dir, &text)
}

#[test]
fn structures_name_their_identities_and_one_default() {
    let (dir, required) = scratch("structures");
    let cfg = two_structures(&dir, "").unwrap();
    let ids = &cfg.identities;
    assert_eq!(ids.structures.len(), 2);
    assert_eq!(ids.default_structure().id.as_deref(), Some("1990000012"));
    assert_eq!(ids.structures[1].sign.field(), "structures.1990000020.sign");
    // The one-structure form: one default structure named by its certificates.
    let one = parse_in(&dir, required).unwrap();
    assert_eq!(
        (
            one.identities.structures.len(),
            one.identities.structures[0].id.clone()
        ),
        (1, None)
    );

    let one_default = |id: &str| {
        format!(
            "[structures.\"{id}\"]\ndefault = true\n\
             auth_cli = {{ p12 = \"a.p12\", password_file = \"pw\" }}\n\
             sign = {{ p12 = \"s.p12\", password_file = \"pw\" }}\n"
        )
    };
    let both_default = parse_in(
        &dir,
        &format!(
            "{}{}[trust]\namc_anchors = [\"anchor.pem\"]\n",
            one_default("1990000012"),
            one_default("1990000020")
        ),
    )
    .unwrap_err();
    assert_eq!(both_default.field, "structures");
    let bad_key = parse_in(
        &dir,
        "[structures.\"12345\"]\nauth_cli = { p12 = \"a.p12\", password_file = \"pw\" }\nsign = { p12 = \"s.p12\", password_file = \"pw\" }\n[trust]\namc_anchors = [\"anchor.pem\"]\n",
    )
    .unwrap_err();
    assert_eq!(bad_key.field, "structures.12345");
    let mixed = parse_in(&dir, &format!("{required}[structures.\"1990000012\"]\nauth_cli = {{ p12 = \"a.p12\", password_file = \"pw\" }}\nsign = {{ p12 = \"s.p12\", password_file = \"pw\" }}\n")).unwrap_err();
    assert_eq!(mixed.field, "identity");
}

#[test]
fn a_fixed_name_id_cannot_speak_for_several_structures() {
    let (dir, _) = scratch("name-id");
    let e = two_structures(&dir, "[assertion]\nname_id = \"CH TEST\"\n").unwrap_err();
    assert_eq!(e.field, "assertion.name_id");
    assert!(e.message.contains("per structure"), "{e}");
}

#[test]
fn grants_name_identified_callers_and_configured_structures() {
    let (dir, _) = scratch("grants");
    std::fs::write(dir.join("tok"), "dpi-token-0123456789\n").unwrap();
    let caller = "[access]\n[[access.callers]]\nname = \"dpi\"\ntoken_file = \"tok\"\n";
    let grant = |g: &str| two_structures(&dir, &format!("{caller}[[access.grants]]\n{g}\n"));
    let ok = grant("caller = \"token:dpi\"\nstructures = [\"1990000012\", \"1990000020\"]\ndefault = \"1990000020\"").unwrap();
    let g = &ok.access.grants["token:dpi"];
    assert_eq!(
        (g.structures.len(), g.default.as_deref()),
        (2, Some("1990000020"))
    );
    for (bad, field) in [
        (
            "caller = \"token:nobody\"\nstructures = [\"1990000012\"]",
            "access.grants[0].caller",
        ),
        (
            "caller = \"token:token\"\nstructures = [\"1990000012\"]",
            "access.grants[0].caller",
        ),
        (
            "caller = \"ip:127.0.0.1\"\nstructures = [\"1990000012\"]",
            "access.grants[0].caller",
        ),
        (
            "caller = \"uid:1000\"\nstructures = [\"1990000099\"]",
            "access.grants[0].structures",
        ),
        (
            "caller = \"cert:SIH\"\nstructures = [\"1990000012\"]\ndefault = \"1990000020\"",
            "access.grants[0].default",
        ),
    ] {
        assert_eq!(grant(bad).unwrap_err().field, field, "{bad}");
    }
    // A monitoring token (admin_only) signs as no structure.
    let admin_only = caller.replace(
        "token_file = \"tok\"\n",
        "token_file = \"tok\"\nadmin_only = true\n",
    );
    let e = two_structures(
        &dir,
        &format!("{admin_only}[[access.grants]]\ncaller = \"token:dpi\"\nstructures = [\"1990000012\"]\n"),
    )
    .unwrap_err();
    assert_eq!(e.field, "access.grants[0].caller");
    assert!(e.message.contains("admin_only"), "{}", e.message);
}
