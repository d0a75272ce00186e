//! The tokenizer on any text: never panics, respects its limits, and a word never carries a
//! control character (the tokenizer refuses them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_core::tokenize::{MAX_WORDS, tokenize};

fuzz_target!(|text: &str| {
    if let Ok(words) = tokenize(text) {
        assert!(words.len() <= MAX_WORDS, "{} words", words.len());
        for w in &words {
            assert!(!w.chars().any(char::is_control), "control char in {w:?}");
        }
    }
});
