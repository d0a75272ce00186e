//! Slack payload parsing after the signature check: slash-command forms, interactivity
//! (`payload=<json>` forms, and the JSON as Socket Mode delivers it) and Events API bodies.
//! The first byte picks the parser; the rest is the body. None may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_bridge::slack::events::{
    CommandBody, parse_command, parse_events, parse_interaction, parse_interaction_json,
};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    match pick % 4 {
        0 => {
            if let Ok(CommandBody::Command(c)) = parse_command(body) {
                let _ = slipway_core::command::parse(&c.command, &c.text);
            }
        }
        1 => {
            let _ = parse_interaction(body);
        }
        2 => {
            let _ = parse_events(body);
        }
        _ => {
            if let Ok(v) = serde_json::from_slice(body) {
                let _ = parse_interaction_json(v);
            }
        }
    }
});
