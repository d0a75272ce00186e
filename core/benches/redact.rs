//! Redaction recall and false positives on the generated corpus (`redaction_corpus/`), by kind,
//! then throughput on 1 MiB of output, whole and streamed in 4 KiB chunks (as command output
//! arrives). The shapes include the worst cases the patterns were tuned against: a key followed
//! by a megabyte of spaces, and unclosed JSON objects that keep a secret context open.
//!
//! `cargo bench -p slipway-core --bench redact` (`-- --recall-only` skips the timings).

#[allow(dead_code)]
mod redaction_corpus;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use slipway_core::redact::redactor;

const MIB: usize = 1 << 20;

/// Secrets of each kind the redactor knows, built at run time so no token-shaped literal sits in
/// the source.
fn secrets() -> String {
    let aws = format!("AKIA{}", "IOSFODNN7EXAMPLE");
    let gh = format!("ghs_{}", "aBcDeFgHiJkLmNoPqRsTuVwXyZ012345");
    let slack = format!(
        "xoxb-{}",
        "1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
    );
    format!(
        "CREDENTIALS\t{aws}\t2024\twJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY\n\
         remote: https://x-access-token:{gh}@github.com/o/r.git\n\
         SLACK_BOT_TOKEN={slack}\n\
         > Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzYSJ9.c2lnbmF0dXJl\r\n\
         DATABASE_URL=postgres://app:pg-S3cret!@db.internal:5432/app\npassword: Hunter2\n\
         {{\"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----\\n\"}}\n"
    )
}

/// Seed and size of the corpus the figures in `docs/benchmarks.md` come from.
const SEED: u64 = 0x5EED_2026;
const PER_KIND: usize = 50;

/// Prints recall per credential kind and changes per benign kind, as Markdown tables.
fn recall() -> String {
    let (cases, benign) = redaction_corpus::generate(SEED, PER_KIND);
    let mut rows: Vec<(&str, &str, usize, usize)> = Vec::new();
    for c in &cases {
        let out = redactor().redact(&c.text);
        let hit = usize::from(redaction_corpus::gone(&out, &c.secrets));
        match rows.last_mut() {
            Some(r) if r.1 == c.kind => {
                r.2 += 1;
                r.3 += hit;
            }
            _ => rows.push((c.category, c.kind, 1, hit)),
        }
    }
    println!("| category | kind | cases | redacted | recall |\n|---|---|---|---|---|");
    for (cat, kind, n, hit) in &rows {
        println!("| {cat} | {kind} | {n} | {hit} | {:.1}% |", pct(*hit, *n));
    }
    let (n, hit) = rows.iter().fold((0, 0), |(a, b), r| (a + r.2, b + r.3));
    let missed_kinds = rows.iter().filter(|r| r.3 < r.2).count();
    println!(
        "| **all** | {} kinds ({missed_kinds} with a miss) | {n} | {hit} | **{:.1}%** |\n",
        rows.len(),
        pct(hit, n)
    );
    let mut brows: Vec<(&str, usize, usize)> = Vec::new();
    for b in &benign {
        let changed = usize::from(redactor().redact(&b.text) != b.text);
        match brows.last_mut() {
            Some(r) if r.0 == b.kind => {
                r.1 += 1;
                r.2 += changed;
            }
            _ => brows.push((b.kind, 1, changed)),
        }
    }
    println!("| benign kind | texts | changed |\n|---|---|---|");
    for (kind, n, changed) in &brows {
        println!("| {kind} | {n} | {changed} |");
    }
    let (n, changed) = brows.iter().fold((0, 0), |(a, b), r| (a + r.1, b + r.2));
    println!("| **all** | {n} | **{changed}** |\n");
    cases
        .iter()
        .map(|c| c.text.as_str())
        .chain(benign.iter().map(|b| b.text.as_str()))
        .collect()
}

fn pct(a: usize, b: usize) -> f64 {
    let f = |x: usize| f64::from(u32::try_from(x).unwrap_or(u32::MAX));
    100.0 * f(a) / f(b.max(1))
}

fn main() {
    let corpus = recall();
    if std::env::args().any(|a| a == "--recall-only") {
        return;
    }
    let shapes: Vec<(&str, String)> = vec![
        (
            "kubectl",
            "default   web-7d4b9c8f5-x2k9p   1/1   Running   0   3d4h   10.0.3.17   ip-10-0-3-4.ec2.internal\n"
                .to_string(),
        ),
        ("secrets", secrets()),
        ("corpus", corpus),
        ("one-line", format!("{} password: x", "ab".repeat(1 << 19))),
        ("colon-then-spaces", format!("key:{}", " ".repeat(MIB))),
        ("unclosed-openers", "\"data\":{\"k\":\"v\",".repeat(1 << 16)),
    ];
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut group = criterion.benchmark_group("redact/1MiB");
    for (name, unit) in &shapes {
        let text = unit.repeat((MIB / unit.len()).max(1));
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("{name}/whole"), |b| {
            b.iter(|| black_box(redactor().redact(black_box(&text))));
        });
        group.bench_function(format!("{name}/stream-4KiB"), |b| {
            b.iter(|| {
                let mut s = redactor().stream();
                let mut n = 0;
                for chunk in text.as_bytes().chunks(4096) {
                    // Chunks cut inside a character are skipped: the shapes are ASCII.
                    n += s.push(std::str::from_utf8(chunk).unwrap_or_default()).len();
                }
                black_box(n + s.finish().len())
            });
        });
    }
    group.finish();
    criterion.final_summary();
}
