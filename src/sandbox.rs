//! The zero-setup sandbox: what `rocgw serve` runs when no configuration file exists anywhere.
//!
//! Safe by construction: it only runs when no config is found, it uses the test PKI (every name
//! says TEST), it listens on loopback only, it says SANDBOX loudly at start-up, and every
//! response carries `X-Rocgw-Sandbox: 1`.

use std::path::{Path, PathBuf};

use crate::clock::now_unix;
use crate::config::{Config, IdentitySource, Overrides};
use crate::identity::EXPIRY_WARNING_DAYS;
use crate::pki::{self, Manifest};
use crate::sim::{Sim, SimConfig};

/// Where the sandbox keeps its test PKI: `--data-dir`, else `$ROCGW_DATA_DIR`, else
/// `$XDG_DATA_HOME/rocgw/sandbox`, else `~/.local/share/rocgw/sandbox`, else `./rocgw-sandbox`.
pub fn data_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("ROCGW_DATA_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(p).join("rocgw").join("sandbox");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/rocgw/sandbox");
    }
    PathBuf::from("rocgw-sandbox")
}

/// `rocgw sim`: starts the simulator from `config`, or the sandbox's test AMCs over the
/// sandbox's test PKI (in `data_dir`, see [`data_dir`]), and serves until stopped.
pub async fn run_sim(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> Result<(), String> {
    let cfg = match config {
        Some(p) => SimConfig::load(&p).map_err(|e| e.to_string())?,
        None => {
            let dir = self::data_dir(data_dir.as_deref());
            let d = dir.clone();
            let (_, generated) = tokio::task::spawn_blocking(move || prepare_pki(&d))
                .await
                .map_err(|e| e.to_string())??;
            if generated {
                tracing::info!(dir = %dir.join("pki").display(), "generated a new test PKI");
            }
            println!(
                "rocgw sim: TEST AMCs over the sandbox test PKI in {}",
                dir.join("pki").display()
            );
            SimConfig::sandbox(&dir.join("pki"), false)
        }
    };
    crate::sim::run(cfg).await
}

/// Starts the sandbox's simulator on its usual ports, or on free ones when those are taken
/// (another sandbox on this machine): the gateway finds its AMCs through the simulated
/// annuaire, whose address it is given, so any ports do.
pub async fn start_sim(pki: &Path, ephemeral: bool) -> Result<Sim, String> {
    let started = match Sim::start(SimConfig::sandbox(pki, ephemeral)).await {
        Err(e) if !ephemeral && e.contains(crate::listener::CANNOT_LISTEN) => {
            tracing::info!(
                error = %e,
                "the simulator's usual ports are taken (another sandbox?): it listens on free ones"
            );
            Sim::start(SimConfig::sandbox(pki, true)).await
        }
        started => started,
    };
    started.map_err(|e| format!("sandbox simulator: {e}"))
}

/// A sandbox listener that cannot listen: the error, and what to do about it. The gateway and
/// admin ports stay as asked (callers and probes rely on them).
pub fn port_taken(error: String) -> String {
    if error.contains(crate::listener::CANNOT_LISTEN) {
        format!(
            "{error} — another rocgw (a sandbox?) may hold it: stop it, or give this one other \
             ports with --listen 127.0.0.1:PORT --admin-listen 127.0.0.1:PORT"
        )
    } else {
        error
    }
}

/// What the sandbox prepared.
pub struct Prepared {
    pub config: Config,
    pub manifest: Manifest,
    pub sample_request: PathBuf,
    /// `Authorization: Bearer …` of the sandbox's named caller, for `curl -H @file`.
    pub caller_header: PathBuf,
}

/// The sandbox's two structures (the test PKI's `org` and `org2`), the first the default.
pub const SANDBOX_STRUCTURES: [(&str, &str); 2] = [("1990000012", "org"), ("1990000020", "org2")];

/// Makes sure a usable test PKI exists under `dir/pki` (reusing one that is still valid for
/// more than a month). Returns its manifest and whether it was generated now.
pub fn prepare_pki(dir: &Path) -> Result<(Manifest, bool), String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the sandbox folder {}: {e}", dir.display()))?;
    let pki_dir = dir.join("pki");
    Ok(match reusable(&pki_dir) {
        Some(m) => (m, false),
        None => {
            let m = pki::init(&pki_dir, true).map_err(|e| format!("sandbox test PKI: {e}"))?;
            (m, true)
        }
    })
}

/// Refuses sandbox listen addresses off loopback.
pub fn check_overrides(overrides: &Overrides) -> Result<(), String> {
    for (field, addr) in [
        ("--listen", overrides.listen),
        ("--admin-listen", overrides.admin_listen),
    ] {
        if let Some(a) = addr {
            if !a.ip().is_loopback() {
                return Err(format!(
                    "{field}: the sandbox listens on loopback only (got {a}); write a \
                     configuration file to serve other addresses"
                ));
            }
        }
    }
    Ok(())
}

/// Writes the sandbox's config (routes to the simulator's `endpoints`, the annuaire at
/// `annuaire_url`) and a sample IDB request next to the PKI, and loads the config.
pub fn prepare(
    dir: &Path,
    overrides: &Overrides,
    annuaire_url: &str,
    endpoints: &[(String, String, String)],
) -> Result<Prepared, String> {
    check_overrides(overrides)?;
    let manifest =
        Manifest::load(&dir.join("pki")).map_err(|e| format!("sandbox test PKI: {e}"))?;
    let caller_header = dir.join("caller.header");
    caller_token(dir, &caller_header)?;
    let config_path = dir.join("rocgw-sandbox.toml");
    write(&config_path, &config_text(annuaire_url, endpoints))?;
    let sample_request = dir.join("idb-request.xml");
    write(&sample_request, SAMPLE_IDB_REQUEST)?;
    let config = Config::load(&config_path, overrides).map_err(|e| e.to_string())?;
    Ok(Prepared {
        config,
        manifest,
        sample_request,
        caller_header,
    })
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The sandbox caller's token (`caller-token`, made once) and the header that carries it;
/// both readable by their owner only.
fn caller_token(dir: &Path, header: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join("caller-token");
    let token = match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().len() >= 16 => t.trim().to_string(),
        _ => {
            let mut b = [0u8; 16];
            aws_lc_rs::rand::fill(&mut b).map_err(|_| "no randomness for the sandbox token")?;
            b.iter().map(|x| format!("{x:02x}")).collect()
        }
    };
    for (p, text) in [
        (&path, format!("{token}\n")),
        (
            &header.to_path_buf(),
            format!("Authorization: Bearer {token}\n"),
        ),
    ] {
        let _ = std::fs::remove_file(p);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(p)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    Ok(())
}

/// An existing sandbox PKI is reused while its ORG certificates have more than a month left.
fn reusable(pki_dir: &Path) -> Option<Manifest> {
    let m = Manifest::load(pki_dir).ok()?;
    let password = std::fs::read_to_string(pki_dir.join(&m.password_file)).ok()?;
    for (role, r) in [
        ("org-auth-cli", crate::identity::Role::AuthCli),
        ("org-sign", crate::identity::Role::Sign),
    ] {
        let e = m.files.iter().find(|e| {
            e.role == role && e.kind == "p12" && e.encryption.as_deref() == Some("aes")
        })?;
        let src = IdentitySource::P12 {
            field: format!("sandbox {role}"),
            path: pki_dir.join(&e.path),
            password: zeroize::Zeroizing::new(password.trim_end().to_string()),
            password_file: None,
        };
        let id = crate::identity::Identity::load(&src, r, now_unix()).ok()?;
        if id.days_left(now_unix()) <= EXPIRY_WARNING_DAYS {
            return None;
        }
    }
    Some(m)
}

/// The sandbox's configuration, written next to its PKI so it can serve as a starting point.
/// AMC calls resolve through the simulator's annuaire; its AMCs are listed as comments.
fn config_text(annuaire_url: &str, endpoints: &[(String, String, String)]) -> String {
    let mut structures = String::new();
    for (i, (id, dir)) in SANDBOX_STRUCTURES.iter().enumerate() {
        structures.push_str(&format!(
            "[structures.\"{id}\"]\ndefault = {}\n\
             auth_cli = {{ p12 = \"pki/{dir}/auth_cli.p12\", password_file = \"pki/secrets/p12-password\" }}\n\
             sign = {{ p12 = \"pki/{dir}/sign.p12\", password_file = \"pki/secrets/p12-password\" }}\n\n",
            i == 0
        ));
    }
    let granted = SANDBOX_STRUCTURES
        .iter()
        .map(|(id, _)| format!("\"{id}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut t = format!(
        "# rocgw SANDBOX configuration, written by `rocgw serve` when no configuration exists.\n\
         # TEST CERTIFICATES, NOT FOR PATIENTS. See config/rocgw.example.toml for production.\n\
         # The annuaire and the AMCs are rocgw's simulator, running in the same process.\n\n\
         # TEST hierarchies only (a production certificate here is refused).\n\
         environment = \"test\"\n\n\
         [server]\nlisten = \"127.0.0.1:8580\"\nadmin_listen = \"127.0.0.1:9580\"\n\n\
         # Two structures of a test hospital group; requests name one with X-Rocgw-Structure.\n\
         {structures}\n\
         # The local caller: its token (caller-token) is granted both structures. It is optional\n\
         # here: a request without it is anonymous and signs as the default structure only.\n\
         [access]\nrequire_token = false\n\n\
         [[access.callers]]\nname = \"sandbox\"\ntoken_file = \"caller-token\"\n\n\
         [[access.grants]]\ncaller = \"token:sandbox\"\nstructures = [{granted}]\n\n\
         [trust]\namc_anchors = [\"pki/osi/anchors.pem\"]\n\
         crls = [\"pki/osi/root.crl.pem\", \"pki/osi/ac-serveur.crl.pem\", \"pki/osi/ac-services-applicatifs.crl.pem\"]\n\
         identity_crls = [\"pki/igc-sante/aci-el-org.crl.pem\", \"pki/igc-sante/acr.crl.pem\"]\n\n\
         # AMC endpoints come from the annuaire (cached); only these hosts are accepted.\n\
         [amc]\nendpoint_hosts = [\"localhost\"]\n\n\
         [annuaire]\nurl = \"{annuaire_url}\"\n\n\
         # What the simulated annuaire answers today:\n"
    );
    for (amc, service, url) in endpoints {
        t.push_str(&format!("#   {amc} {service} -> {url}\n"));
    }
    t
}

/// The start-up banner.
pub fn banner(dir: &Path) -> String {
    format!(
        "\n\
         ************************************************************************\n\
         *  rocgw SANDBOX — TEST CERTIFICATES, NOT FOR PATIENTS                 *\n\
         *  No configuration file was found, so rocgw runs its sandbox:         *\n\
         *  a generated TEST PKI and test AMC routes, on 127.0.0.1 only.        *\n\
         *  For production, write /etc/rocgw/rocgw.toml or pass --config.       *\n\
         ************************************************************************\n\
         sandbox data: {}\n",
        dir.display()
    )
}

/// A ready-to-paste command that sends the sample IDB request through the gateway as the
/// sandbox's caller (`caller_header`), signed as `structure`.
pub fn curl_example(
    gateway: std::net::SocketAddr,
    sample: &Path,
    caller_header: &Path,
    structure: &str,
) -> String {
    format!(
        "curl -sS -i -H 'Content-Type: application/soap+xml; charset=utf-8' -H {} -H 'X-Rocgw-Structure: {structure}' --data-binary {} http://{}/amc/{}/idb",
        shell_quote(&format!("@{}", caller_header.display())),
        shell_quote(&format!("@{}", sample.display())),
        gateway,
        crate::sim::SANDBOX_AMCS[0].0
    )
}

/// Quotes a word for POSIX shells when it needs it.
fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"@/._-+:=,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A sample IDB request: SOAP 1.2 with WS-Addressing, body in a placeholder namespace (the ROC
/// WSDLs are not public). The beneficiary is fictitious.
pub const SAMPLE_IDB_REQUEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://www.w3.org/2005/08/addressing">
  <soap:Header>
    <wsa:Action>urn:rocgw:sandbox:idb</wsa:Action>
    <wsa:MessageID>urn:uuid:00000000-0000-4000-8000-000000000001</wsa:MessageID>
  </soap:Header>
  <soap:Body>
    <idb:identificationDroits xmlns:idb="urn:rocgw:sandbox:idb">
      <idb:numeroAmc>99999991</idb:numeroAmc>
      <idb:beneficiaire>
        <idb:nir>2990199999999</idb:nir>
        <idb:nom>PATIENT-TEST</idb:nom>
        <idb:prenom>Fictif</idb:prenom>
        <idb:dateNaissance>1999-01-01</idb:dateNaissance>
      </idb:beneficiaire>
      <idb:dateSoins>2026-11-28</idb:dateSoins>
    </idb:identificationDroits>
  </soap:Body>
</soap:Envelope>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_example_quotes_unusual_paths() {
        let addr = "127.0.0.1:8580".parse().unwrap();
        let h = Path::new("/home/a/caller.header");
        let plain = curl_example(addr, Path::new("/home/a/idb-request.xml"), h, "1990000020");
        assert!(plain.contains(" @/home/a/idb-request.xml http://127.0.0.1:8580/amc/99999991/idb"));
        assert!(plain.contains("-H @/home/a/caller.header -H 'X-Rocgw-Structure: 1990000020'"));
        let odd = curl_example(addr, Path::new("/home/J O'Neil/idb.xml"), h, "1990000012");
        assert!(odd.contains(r"'@/home/J O'\''Neil/idb.xml'"), "{odd}");
    }
}
