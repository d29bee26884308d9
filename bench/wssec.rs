//! WS-Security stamping: the XML work alone (envelope parse, canonical assertion, digest,
//! insertion; RSA replaced by a constant), full stamping against raw RSA-2048 signatures in the
//! same run, stamping with assertion reuse, and stamping for two structures of a hospital group
//! (alternating keys and profiles) against one, in the same run.
//!
//! cargo bench --bench wssec

#[path = "common.rs"]
mod common;

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use rocgw::clock::now_unix;
use rocgw::config::Profile;
use rocgw::wssec::{self, AssertionCache, Signer};

/// A SOAP 1.2 envelope of about `size` bytes: WS-Addressing headers and a body of nested,
/// attributed, accented elements (an IDB-like request repeated).
fn envelope(size: usize) -> Vec<u8> {
    let mut body = String::new();
    let item = "<idb:beneficiaire rang=\"1\" qualite=\"assure\"><idb:nir>2990199999999</idb:nir><idb:nom>PATIENT-TEST</idb:nom><idb:prenom>Cécile</idb:prenom><idb:dateNaissance>1999-01-01</idb:dateNaissance><idb:adresse><idb:ligne>12 rue de l'Hôpital</idb:ligne><idb:cp>13005</idb:cp></idb:adresse></idb:beneficiaire>";
    let frame = 600;
    while body.len() + frame + item.len() < size {
        body.push_str(item);
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:wsa=\"http://www.w3.org/2005/08/addressing\"><soap:Header><wsa:Action>urn:roc:idb</wsa:Action><wsa:MessageID>urn:uuid:00000000-0000-4000-8000-000000000001</wsa:MessageID><wsa:To>https://amc.example.test/ws/idb</wsa:To></soap:Header><soap:Body><idb:identificationDroits xmlns:idb=\"urn:roc:idb\">{body}</idb:identificationDroits></soap:Body></soap:Envelope>"
    )
    .into_bytes()
}

const AUDIENCE: &str = "https://amc.example.test/ws/idb";

fn xml_work(profile: &Profile, signer: &Signer, env: &[u8]) -> usize {
    let plan = wssec::plan(env, profile).unwrap();
    let a = wssec::build_assertion_with(profile, signer, AUDIENCE, now_unix(), |_| vec![0u8; 256]);
    wssec::stamp(env, &plan, &a.xml, false).len()
}

fn full(profile: &Profile, signer: &Signer, env: &[u8]) -> usize {
    let plan = wssec::plan(env, profile).unwrap();
    let a = wssec::build_assertion(profile, signer, AUDIENCE, now_unix());
    wssec::stamp(env, &plan, &a.xml, false).len()
}

fn main() {
    let ([signer, signer2], _dir) = common::sign_signers();
    let profile = Profile::default();
    let small = envelope(2 * 1024);
    let large = envelope(50 * 1024);
    println!("envelopes: {} and {} bytes", small.len(), large.len());
    let mut c = Criterion::default().configure_from_args();

    let mut g = c.benchmark_group("xml_work_without_rsa");
    for (name, env) in [("2KB", &small), ("50KB", &large)] {
        g.throughput(Throughput::Bytes(env.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| black_box(xml_work(&profile, &signer, env)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("parts");
    g.bench_function("quick_xml_events_50KB", |b| {
        b.iter(|| {
            let mut r = quick_xml::Reader::from_reader(&large[..]);
            let mut n = 0;
            loop {
                match r.read_event().unwrap() {
                    quick_xml::events::Event::Eof => break,
                    _ => n += 1,
                }
            }
            black_box(n)
        })
    });
    g.bench_function("utf8_check_50KB", |b| {
        b.iter(|| black_box(std::str::from_utf8(&large).is_ok()))
    });
    g.bench_function("plan_50KB", |b| {
        b.iter(|| black_box(wssec::plan(&large, &profile).unwrap()))
    });
    g.bench_function("assertion_without_rsa", |b| {
        b.iter(|| {
            black_box(wssec::build_assertion_with(
                &profile,
                &signer,
                AUDIENCE,
                now_unix(),
                |_| vec![0u8; 256],
            ))
        })
    });
    let plan = wssec::plan(&large, &profile).unwrap();
    let a = wssec::build_assertion(&profile, &signer, AUDIENCE, now_unix());
    g.bench_function("insert_50KB", |b| {
        b.iter(|| black_box(wssec::stamp(&large, &plan, &a.xml, false)))
    });
    g.finish();

    let mut g = c.benchmark_group("signing_2KB");
    g.throughput(Throughput::Elements(1));
    let msg = vec![0x5au8; 900];
    g.bench_function("raw_rsa2048_sign", |b| {
        b.iter(|| black_box(signer.sign(&msg)))
    });
    g.bench_function("full_stamp", |b| {
        b.iter(|| black_box(full(&profile, &signer, &small)))
    });
    let reuse = Profile {
        reuse: std::time::Duration::from_secs(60),
        ..Profile::default()
    };
    let cache = AssertionCache::default();
    g.bench_function("stamp_with_reuse", |b| {
        b.iter(|| {
            let plan = wssec::plan(&small, &reuse).unwrap();
            let (a, _) = cache.get(&reuse, &signer, AUDIENCE, now_unix());
            black_box(wssec::stamp(&small, &plan, &a.xml, false).len())
        })
    });
    g.finish();

    // Two structures: each request alternates key and profile (its NameID), as a gateway
    // serving an EJ and an EG does; against one structure.
    let profile2 = Profile {
        name_id: Some("1990000020".into()),
        ..Profile::default()
    };
    let structures = [(&profile, &signer), (&profile2, &signer2)];
    let mut g = c.benchmark_group("structures_2KB");
    g.throughput(Throughput::Elements(1));
    g.bench_function("one_structure", |b| {
        b.iter(|| black_box(full(&profile, &signer, &small)))
    });
    let mut k = 0usize;
    g.bench_function("two_structures", |b| {
        b.iter(|| {
            k += 1;
            let (p, s) = structures[k % 2];
            black_box(full(p, s, &small))
        })
    });
    g.finish();
    c.final_summary();

    same_run_ratios(&signer, &msg, &small, structures);
}

/// Full stamping against raw RSA signatures, and two structures against one, each pair in
/// alternating blocks of one run (a ratio both sides of which met the same machine).
fn same_run_ratios(
    signer: &Signer,
    msg: &[u8],
    small: &[u8],
    structures: [(&Profile, &Signer); 2],
) {
    let profile = structures[0].0;
    // Full stamping as a ratio of raw RSA signatures, measured in alternating blocks of one run.
    let rounds: usize = std::env::var("ROCGW_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let (mut t_rsa, mut t_full) = (0.0f64, 0.0f64);
    let block = 100;
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..block {
            black_box(signer.sign(msg));
        }
        t_rsa += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..block {
            black_box(full(profile, signer, small));
        }
        t_full += t.elapsed().as_secs_f64();
    }
    let n = (rounds * block) as f64;
    println!(
        "one core, {} alternating blocks of {block}: raw RSA-2048 {:.0} signatures/s, full stamping (2 KB) {:.0} stamps/s, ratio {:.3}",
        rounds,
        n / t_rsa,
        n / t_full,
        t_rsa / t_full
    );

    // Two structures against one, in alternating blocks of the same run.
    let (mut t_one, mut t_two) = (0.0f64, 0.0f64);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..block {
            black_box(full(profile, signer, small));
        }
        t_one += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..block {
            let (p, s) = structures[i % 2];
            black_box(full(p, s, small));
        }
        t_two += t.elapsed().as_secs_f64();
    }
    println!(
        "one core, {rounds} alternating blocks of {block}: one structure {:.0} stamps/s, two structures {:.0} stamps/s, ratio {:.3}",
        n / t_one,
        n / t_two,
        t_one / t_two
    );
}
