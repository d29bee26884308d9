//! rocgw's integration tests: one binary, real processes, real certificates from the project's
//! own test PKI (generated once per run), independent tools (`openssl`) as oracles.

mod access;
mod alerts;
mod architecture;
mod cert;
mod cli;
mod crls;
mod deploy;
mod doctor_serve;
mod envelopes;
mod faults;
mod json_logs;
mod load;
mod opensaml;
mod openssl_peers;
mod ops;
mod packaging;
mod paths;
mod pki;
mod queue;
mod reload;
mod resilience;
mod response_signature;
mod roles;
mod routing;
mod sandbox;
mod sim;
mod sim_rules;
mod slow_bodies;
mod startup;
mod status;
mod structures;
mod support;
mod tls_server;
mod upstream;
mod wssec;
