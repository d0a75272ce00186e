//! After a deploy applied: wait, with Kubernetes' own status (`kubectl rollout status`, which
//! watches the Deployment's generation, conditions and replica counts), for each Deployment the
//! change's kustomization renders. A rollout that finishes is reported with its ready replicas
//! and the image (digest) now running; one that doesn't (its progress deadline exceeded, pods
//! crash-looping or never ready, or the configured wait running out) fails the execution, with
//! the failing pods' reasons.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use slipway_infra::exec::{ExecSpec, run_to_end};

use super::tools::Runner;
use crate::kubeconfig::KubeTarget;
use crate::outcome::{Ran, Verdict};

/// The rendered manifests are read, not shown; they are small.
const RENDER_CAP: usize = 4 << 20;

/// One Deployment the kustomization renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rollout {
    pub namespace: String,
    pub name: String,
    /// `k=v,…` from `spec.selector.matchLabels`, to find its pods.
    pub selector: String,
}

/// The Deployments in `kubectl kustomize` output (multi-document YAML).
pub(super) fn deployments(rendered: &str) -> Result<Vec<Rollout>, String> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(rendered)
        .map_err(|e| format!("reading the rendered manifests: {e}"))?;
    Ok(docs
        .iter()
        .filter(|d| d["kind"] == "Deployment")
        .map(|d| Rollout {
            namespace: d["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string(),
            name: d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            selector: d["spec"]["selector"]["matchLabels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
        })
        .filter(|r| !r.name.is_empty())
        .collect())
}

/// Wait for every Deployment `dir` renders; on the first that fails, add the pods' reasons
/// and fail `ran`.
pub(super) async fn wait(
    runner: &Runner<'_>,
    kube: &KubeTarget,
    dir: &str,
    checkout: &Path,
    timeout: Duration,
    ran: &mut Ran,
) {
    let rollouts = match render(runner, kube, dir, checkout).await {
        Ok(r) => r,
        Err(why) => {
            ran.verdict = Verdict::Failed(format!(
                "applied, but the rollout can't be watched: {why}; check the deployment by hand"
            ));
            return;
        }
    };
    for r in rollouts {
        if let Err(why) = one(runner, kube, &r, checkout, timeout, ran).await {
            ran.verdict = Verdict::Failed(why);
            return;
        }
    }
}

/// `kubectl kustomize <dir>`: the objects the apply sent, read without the API.
async fn render(
    runner: &Runner<'_>,
    kube: &KubeTarget,
    dir: &str,
    checkout: &Path,
) -> Result<Vec<Rollout>, String> {
    let r = run_to_end(ExecSpec {
        argv: runner.kubectl_with(kube, ["kustomize".to_string(), dir.to_string()]),
        env: runner.base_env(),
        cwd: checkout.to_path_buf(),
        timeout: Duration::from_secs(60),
        output_cap: RENDER_CAP,
        kill_grace: runner.tools.kill_grace.0,
    })
    .await;
    if !r.end.success() || r.truncated {
        return Err(format!(
            "`kubectl kustomize {dir}` {}",
            r.end.describe(runner.timeout)
        ));
    }
    deployments(&r.output)
}

/// Watch one rollout; report ready replicas and image, or why it failed.
async fn one(
    runner: &Runner<'_>,
    kube: &KubeTarget,
    r: &Rollout,
    checkout: &Path,
    timeout: Duration,
    ran: &mut Ran,
) -> Result<(), String> {
    let target = format!("deployment/{}", r.name);
    let secs = format!("--timeout={}s", timeout.as_secs().max(1));
    let args = ["rollout", "status", &target, "-n", &r.namespace, &secs];
    let status = step(runner, kube, &args, checkout).await;
    let ok = status.end.success();
    let said = status
        .output
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    ran.steps.push(status);
    if ok {
        let report = "-o=jsonpath={.status.readyReplicas}/{.spec.replicas} replicas ready, running {.spec.template.spec.containers[*].image}";
        let get = ["get", &target, "-n", &r.namespace, report];
        let s = step(runner, kube, &get, checkout).await;
        ran.steps.push(s);
        return Ok(());
    }
    let pods = "-o=jsonpath={range .items[*]}{.metadata.name}: {.status.containerStatuses[*].state.waiting.reason} {.status.conditions[?(@.type==\"Ready\")].message}{\"\\n\"}{end}";
    let get = ["get", "pods", "-n", &r.namespace, "-l", &r.selector, pods];
    let s = step(runner, kube, &get, checkout).await;
    let reasons = s
        .output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(5)
        .collect::<Vec<_>>()
        .join("; ");
    ran.steps.push(s);
    Err(format!(
        "applied, but the rollout of {target} in {} did not finish: {said}{}; the previous version may still be serving: roll back, or fix and deploy again",
        r.namespace,
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" (pods: {reasons})")
        }
    ))
}

/// A shown, non-mutating kubectl step against the change's cluster.
async fn step(
    runner: &Runner<'_>,
    kube: &KubeTarget,
    words: &[&str],
    checkout: &Path,
) -> crate::outcome::Step {
    let shown = format!("kubectl {} (cluster {})", words.join(" "), kube.context);
    let argv = runner.kubectl_with(kube, words.iter().map(|a| (*a).to_string()));
    runner
        .step(
            argv,
            shown,
            &runner.base_env(),
            checkout,
            runner.output_cap,
            false,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployments_of_a_rendered_kustomization_are_found_with_their_selectors() {
        let rendered = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: web\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: web\nspec:\n  selector:\n    matchLabels:\n      app: web\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: worker\nspec:\n  selector:\n    matchLabels:\n      app: worker\n      tier: bg\n";
        assert_eq!(
            deployments(rendered).unwrap(),
            vec![
                Rollout {
                    namespace: "web".into(),
                    name: "web".into(),
                    selector: "app=web".into()
                },
                Rollout {
                    namespace: "default".into(),
                    name: "worker".into(),
                    selector: "app=worker,tier=bg".into()
                },
            ]
        );
    }
}
