//! Every command parser, through the same entry point as Slack (`parse(slash, text)`): the first
//! byte picks the family. A parsed command must yield its argv, target, resource and description
//! without panicking, and its argv never holds a word the tokenizer would refuse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_core::command::{Family, parse, parse_line};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let families = Family::ALL;
    let slash = families[usize::from(pick) % families.len()].slash();
    let parsed = if pick >= 0xf0 {
        parse_line(text)
    } else {
        parse(&slash, text)
    };
    let Ok(cmd) = parsed else {
        return;
    };
    let target = cmd.target();
    let _ = (
        cmd.family(),
        cmd.tier(),
        target.describe(),
        target.resource(),
    );
    if let Some(argv) = cmd.argv() {
        assert!(!argv.is_empty());
        for w in &argv {
            assert!(
                !w.contains(['\n', '\r', '\0']),
                "line break in argv word {w:?}"
            );
        }
    }
});
