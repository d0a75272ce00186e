//! The `kubectl -f` manifest reader (multi-document YAML from the GitOps repo): never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_core::command::kubectl::manifest_objects;

fuzz_target!(|text: &str| {
    if let Ok(objects) = manifest_objects(text) {
        for o in &objects {
            let _ = o.describe();
        }
    }
});
