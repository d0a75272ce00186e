//! The streaming redactor. The first bytes choose chunk sizes; the rest is the text.
//!
//! With lines under the hold-back cap, streamed output must equal whole-text redaction (the
//! text starts with a Secret `kind` so both apply the JSON `data` gate alike). With a tiny cap
//! (forced cuts everywhere) it must not panic and must hold back no more than its floor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_core::redact::{Redactor, redactor};

const KIND: &str = "\"kind\": \"Secret\"\n";

fn stream(r: &Redactor, text: &str, sizes: &[u8]) -> String {
    let mut s = r.stream();
    let mut out = String::new();
    let mut rest = text;
    let mut i = 0;
    while !rest.is_empty() {
        let want = usize::from(sizes.get(i % sizes.len().max(1)).copied().unwrap_or(64)).max(1);
        i += 1;
        let mut cut = want.min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        out += &s.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out + &s.finish()
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8).min(rest.len());
    let (sizes, body) = rest.split_at(n);
    let Ok(body) = std::str::from_utf8(body) else {
        return;
    };
    let text = format!("{KIND}{body}");
    let whole = redactor().redact(&text);
    let streamed = stream(redactor(), &text, sizes);
    assert_eq!(streamed, whole, "stream and whole differ for {text:?}");
    let _ = stream(&Redactor::with_hold_cap(1), &text, sizes);
});
