//! Policy hot reload: on SIGHUP (the configured file) and when the policy file changes on the
//! GitOps repository's default branch. A valid policy replaces the one in force whole; an
//! invalid one changes nothing, and says so in the logs, the support channel and a metric.
//! Every attempt is a `PolicyReload` audit record.

use sha2::Digest as _;
use slipway_core::audit::{AuditRecord, EventKind};
use slipway_core::policy::Policy;

use crate::ctx::Ctx;
use crate::slack::client::Message;

/// What a reload read, and from where (`policy/slipway.yaml@main`, a file path…).
#[derive(Debug)]
pub struct Candidate {
    pub source: String,
    /// The file's text, or why it couldn't be read.
    pub text: Result<String, String>,
}

/// Re-read the configured policy file (SIGHUP).
pub async fn from_file(ctx: &Ctx) -> bool {
    let path = ctx.config.policy.clone();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}:1:1: can't read the policy file: {e}", path.display()));
    apply(
        ctx,
        Candidate {
            source: path.display().to_string(),
            text,
        },
        "SIGHUP",
    )
    .await
}

/// Judge `candidate` and put it in force if it compiles; `true` when it did.
pub async fn apply(ctx: &Ctx, candidate: Candidate, trigger: &str) -> bool {
    let digest = candidate
        .text
        .as_ref()
        .ok()
        .map(|t| format!("sha256:{}", hex::encode(sha2::Sha256::digest(t.as_bytes()))));
    let compiled = candidate
        .text
        .and_then(|t| Policy::from_yaml(&t).map_err(|e| e.display_with_path(&candidate.source)));
    let (outcome, error) = match compiled {
        Ok(policy) => {
            ctx.policies.replace(policy);
            tracing::info!(source = %candidate.source, %trigger, "policy reloaded");
            ("applied", None)
        }
        Err(why) => {
            tracing::error!(source = %candidate.source, %trigger, error = %why, "policy reload refused; the previous policy stays in force");
            tell_support(ctx, &why).await;
            ("invalid", Some(why))
        }
    };
    ctx.metrics
        .policy_reloads
        .get_or_create(&crate::metrics::OutcomeLabels { outcome })
        .inc();
    let record = AuditRecord::new(EventKind::PolicyReload, ctx.ids.next(), ctx.clock.now())
        .with_details(serde_json::json!({
            "trigger": trigger,
            "source": candidate.source,
            "outcome": outcome,
            "digest": digest,
            "error": error,
        }));
    let _ = ctx.record(record, "a policy reload").await;
    outcome == "applied"
}

/// Post a refused reload to the support channel, when `support` names a channel.
async fn tell_support(ctx: &Ctx, why: &str) {
    let policy = ctx.policy();
    let support = policy.support();
    let is_channel =
        support.starts_with('#') || support.starts_with('C') || support.starts_with('G');
    if !is_channel {
        return;
    }
    let text = format!(
        ":warning: Slipway refused a new policy and keeps the one in force: `{}`. Fix the file and \
         reload again.",
        why.replace('`', "'")
    );
    if let Err(e) = ctx.slack.post(support, None, &Message::text(text)).await {
        tracing::warn!(error = %e, "telling the support channel about a refused policy");
    }
}
