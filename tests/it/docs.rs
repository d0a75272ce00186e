//! Generated docs in the repo must equal a fresh generation.

use slipway_tests::repo_root;

#[test]
fn generated_docs_are_up_to_date() {
    let root = repo_root();
    for (rel, fresh) in slipway_bridge::docs::generate(&root).expect("generates") {
        let committed = std::fs::read_to_string(root.join(&rel)).unwrap_or_default();
        assert!(
            committed == fresh,
            "{rel} is out of date: run `cargo run -p slipway-bridge -- docs`"
        );
    }
}

#[test]
fn docs_check_command_agrees() {
    let out = crate::slipway(&["docs", "--check"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
}
