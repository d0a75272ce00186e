//! The terraform plan digest pinned in a change request. Plan files are not byte-for-byte
//! reproducible, so the digest covers what the plan would do: `terraform show -json <plan>`'s
//! `resource_changes` and `output_changes`, in canonical JSON. The runner re-plans, digests
//! the same way, and refuses on any difference (drift since approval).

use sha2::{Digest, Sha256};

/// sha256 (hex) of a plan's planned changes, from `terraform show -json` output.
pub fn plan_digest(show_json: &str) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_str(show_json)
        .map_err(|e| format!("terraform show -json output is not JSON: {e}"))?;
    let pick = |key: &str| v.get(key).cloned().unwrap_or(serde_json::Value::Null);
    let subject = serde_json::json!({
        "resource_changes": pick("resource_changes"),
        "output_changes": pick("output_changes"),
    });
    let canonical = super::canonical(&subject);
    Ok(hex::encode(Sha256::digest(canonical.as_bytes())))
}

/// `Plan: X to add, Y to change, Z to destroy.` or `No changes.` from plan text.
pub fn plan_summary(plan_text: &str) -> Option<String> {
    plan_text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("Plan: ") || l.starts_with("No changes."))
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_volatile_fields_and_key_order() {
        let a = r#"{"format_version":"1.2","timestamp":"2026-01-01T00:00:00Z","resource_changes":[{"address":"terraform_data.x","change":{"actions":["create"],"after":{"input":"v1"}}}],"output_changes":{}}"#;
        let b = r#"{"output_changes":{},"resource_changes":[{"change":{"after":{"input":"v1"},"actions":["create"]},"address":"terraform_data.x"}],"timestamp":"2027-05-05T00:00:00Z"}"#;
        assert_eq!(plan_digest(a).unwrap(), plan_digest(b).unwrap());
        let drifted = a.replace("\"v1\"", "\"v2\"");
        assert_ne!(plan_digest(a).unwrap(), plan_digest(&drifted).unwrap());
        assert!(plan_digest("not json").is_err());
    }

    #[test]
    fn summaries() {
        assert_eq!(
            plan_summary("...\nPlan: 1 to add, 0 to change, 0 to destroy.\n").as_deref(),
            Some("Plan: 1 to add, 0 to change, 0 to destroy.")
        );
        assert_eq!(
            plan_summary("No changes. Your infrastructure matches the configuration.").as_deref(),
            Some("No changes. Your infrastructure matches the configuration.")
        );
        assert_eq!(plan_summary("error"), None);
    }
}
