//! Recall and false positives on the generated corpus (`benches/redaction_corpus/`): every
//! credential of every kind is redacted, and no benign line changes. The bench reports the same
//! figures per kind; this test keeps them at 100% and 0.

#[path = "../../benches/redaction_corpus/mod.rs"]
mod corpus;

use super::redactor;

/// Seeds checked here (50 cases per kind each); the bench reports the first.
const SEEDS: [u64; 3] = [0x5EED_2026, 1, 0xDEAD_BEEF];

#[test]
fn every_credential_kind_is_redacted() {
    let mut missed = Vec::new();
    for seed in SEEDS {
        let (cases, _) = corpus::generate(seed, 50);
        for c in &cases {
            let out = redactor().redact(&c.text);
            if !corpus::gone(&out, &c.secrets) {
                missed.push(format!(
                    "{}/{}: {:?} -> {:?}",
                    c.category, c.kind, c.text, out
                ));
            }
        }
    }
    assert!(
        missed.is_empty(),
        "{} missed:\n{}",
        missed.len(),
        missed.join("\n")
    );
}

#[test]
fn benign_text_is_byte_identical() {
    let mut changed = Vec::new();
    for seed in SEEDS {
        let (_, benign) = corpus::generate(seed, 50);
        for b in &benign {
            let out = redactor().redact(&b.text);
            if out != b.text {
                changed.push(format!("{}: {:?} -> {:?}", b.kind, b.text, out));
            }
        }
    }
    assert!(
        changed.is_empty(),
        "{} changed:\n{}",
        changed.len(),
        changed.join("\n")
    );
}

/// The whole corpus as one text, whole and streamed: the same secrets are gone.
#[test]
fn the_corpus_as_one_text() {
    let (cases, benign) = corpus::generate(SEEDS[0], 5);
    let text: String = cases.iter().map(|c| c.text.as_str()).collect();
    let whole = redactor().redact(&text);
    for c in &cases {
        assert!(
            corpus::gone_window(&whole, &c.secrets, 16),
            "{} survived: {:?}",
            c.kind,
            c.text
        );
    }
    let mut stream = redactor().stream();
    let mut streamed = String::new();
    for chunk in text.as_bytes().chunks(4096) {
        streamed += &stream.push(std::str::from_utf8(chunk).unwrap_or_default());
    }
    streamed += &stream.finish();
    assert_eq!(streamed, whole);
    let benign_text: String = benign.iter().map(|b| b.text.as_str()).collect();
    assert_eq!(redactor().redact(&benign_text), benign_text);
}
