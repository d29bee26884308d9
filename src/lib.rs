//! rocgw: a local gateway between a hospital's information system (SIH) and the ROC services
//! of French complementary health insurers (AMC).
//!
//! A SIH sends plain SOAP to `http://127.0.0.1:<port>`; rocgw adds what the ROC security model
//! demands (mutual TLS with the ORG AUTH_CLI certificate for the Annuaire AMC, a SAML assertion
//! signed with the ORG SIGN certificate for the AMC web services, IGC OSI server checks) so that
//! no SIH application touches a private key.
//!
//! Modules, in the order a request meets them: `listener` (HTTP accept loop), `access` (who may
//! call), `proxy` (the gateway's routes), `budget` (memory for bodies), `breaker` (circuit
//! breakers), `soap` (envelope version and refusals), `fault` (SOAP
//! faults). Upstream: `upstream` (TLS clients, proxy tunnel), `trust` (IGC OSI anchors, CRLs, verifier).
//! WS-Security: `wssec` (assertion, envelope stamping, verification). Start-up and reload:
//! `config`, `identity`, `reload`, `serve`, `sandbox`, `logging`, `metrics`. For integrators:
//! `sim` (AMC and annuaire simulator), `annuaire` (lookup messages, shared by the simulator and
//! the gateway), `load` (load generator). Tooling: `pki` (test PKI), `cli`.

pub mod access;
pub mod admin;
pub mod annuaire;
pub mod audit;
pub mod breaker;
pub mod budget;
pub mod cert;
pub mod cli;
pub mod config;
pub mod fault;
pub mod identity;
pub mod listener;
pub mod load;
pub mod logging;
pub mod metrics;
pub mod pki;
pub mod proxy;
pub mod reload;
pub mod sandbox;
pub mod serve;
pub mod sim;
pub mod soap;
pub mod trust;
pub mod upstream;
pub mod wssec;
