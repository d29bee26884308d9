//! The AMC simulator (`rocgw sim`, and in-process in the sandbox): an Annuaire AMC over mutual
//! TLS and AMC services (`idb`, `simulation`, `clc`, `annulation`) that verify every request
//! as a real AMC would, with fault injection and their own `/metrics`.
//!
//! Each simulated AMC has its own TLS port (so each can present its own, possibly broken,
//! server certificate); the annuaire has one; a plain-HTTP admin port serves `/metrics`,
//! `/healthz` and the fault-injection API:
//!
//! - `GET /faults` — every AMC's current faults, and the annuaire's (JSON);
//! - `PUT /faults/{numero_amc}` — replace them (JSON body, the fields of `[amc.faults]`);
//!   `PUT /faults/annuaire` — the same for the annuaire (latency, errors, resets: an outage);
//! - `DELETE /faults/{numero_amc|annuaire}` — back to the configured faults.
//!
//! By concern: `config` (the file, the sandbox table), `server` (start-up, shared state),
//! `tls`, `annuaire`, `amc` and `admin` (the three kinds of port), `check` (what an AMC
//! refuses), `answer` (what it answers), `inject` (what it does wrong). The simulator knows
//! nothing of the sandbox: the sandbox starts it.

mod admin;
mod amc;
mod annuaire;
mod answer;
mod check;
mod config;
mod inject;
mod server;
mod sign;
mod tls;

pub use check::{same_dn, Checker, Policy, Refusal, TimeRules, REASONS};
pub use config::{
    AmcCfg, AnnuaireCfg, CertKey, Certificates, DirectoryEntry, IgcSante, SimConfig,
    SANDBOX_ADMIN_PORT, SANDBOX_AMCS,
};
pub use inject::{Action, CertMode, Distribution, Faults};
pub use server::{run, Sim};
pub use sign::SignatureFault;
