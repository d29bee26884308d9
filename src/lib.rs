//! rocgw: a local gateway between a hospital's information system (SIH) and the ROC services
//! of French complementary health insurers (AMC).
//!
//! A SIH sends plain SOAP to `http://127.0.0.1:<port>`; rocgw adds what the ROC security model
//! demands (mutual TLS with the ORG AUTH_CLI certificate for the Annuaire AMC, a SAML assertion
//! signed with the ORG SIGN certificate for the AMC web services, IGC OSI server checks) so that
//! no SIH application touches a private key.
//!
//! ## Layers
//!
//! A module uses only modules of its own layer or of the layers below, and no two modules reach
//! each other through any chain. `tests/it/architecture.rs` reads every `crate::` and `super::`
//! path in `src/` and checks this table (the README's code map says what each module owns):
//!
//! - layer 8, command line: `cli`
//! - layer 7, start-up: `serve`
//! - layer 6, tools that run the others: `admin`, `sandbox`, `load`, `probe`
//! - layer 5, the test kit: `sim`, `cert`, `pki`
//! - layer 4, the gateway, one file per hop: `gateway`
//! - layer 3, serving and credentials in force: `runtime`, `listener`, `access`
//! - layer 2, credentials and mechanisms: `identity`, `trust`, `wssec`, `annuaire`, `upstream`, `breaker`, `audit`, `local_tls`
//! - layer 1, configuration: `config`, `logging`
//! - layer 0, foundations: `clock`, `crypto`, `soap`, `fault`, `metrics`, `budget`, `notify`, `version`, `http1`, `slots`
pub mod access;
pub mod admin;
pub mod annuaire;
pub mod audit;
pub mod breaker;
pub mod budget;
pub mod cert;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod fault;
pub mod gateway;
pub mod http1;
pub mod identity;
pub mod listener;
pub mod load;
pub mod local_tls;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod pki;
pub mod probe;
pub mod runtime;
pub mod sandbox;
pub mod serve;
pub mod sim;
pub mod slots;
pub mod soap;
pub mod trust;
pub mod upstream;
pub mod version;
pub mod wssec;
