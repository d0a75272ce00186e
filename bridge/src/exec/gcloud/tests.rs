//! What a `/gcloud` run shows: stripped JSON, or nothing when it can't be stripped whole.

use super::*;
use slipway_infra::exec::ExecEnd;

fn result(output: &str, truncated: bool) -> ExecResult {
    ExecResult {
        end: ExecEnd::Exited(0),
        output: output.into(),
        truncated,
        total_bytes: output.len() as u64,
        digest: String::new(),
        duration: Duration::from_millis(1),
    }
}

#[test]
fn secret_fields_are_removed_and_output_that_cant_be_parsed_whole_is_withheld() {
    let paths = vec!["metadata.items".to_string()];
    let json = r#"[{"name":"web-1","metadata":{"items":[{"key":"startup-script","value":"export DB_PASSWORD=hunter2"}]}}]"#;
    let mut r = result(json, false);
    strip_output(&mut r, &paths);
    assert!(
        r.output.contains("web-1") && !r.output.contains("hunter2"),
        "{}",
        r.output
    );
    let mut cut = result(&json[..40], true);
    strip_output(&mut cut, &paths);
    assert!(cut.output.starts_with("(output withheld"), "{}", cut.output);
    let mut text = result("DB_PASSWORD=hunter2", false);
    strip_output(&mut text, &paths);
    assert!(!text.output.contains("hunter2"));
}

#[test]
fn the_request_reason_names_the_requester_and_decision_and_nothing_else() {
    let r = reason("ada@example.com", "U0ADA", "ev-123");
    assert_eq!(
        r,
        "slipway requester=ada@example.com slack=U0ADA decision=ev-123"
    );
    let r = reason("ada\r\nX-Injected: 1", "U0ADA", "ev");
    assert!(!r.contains('\n') && !r.contains('\r'), "{r}");
}
