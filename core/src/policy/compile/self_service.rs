//! Self-service (`approvers: 0`): a change still becomes a signed PR, but nobody has to approve
//! it. That posture must never reach a protected resource, so the compiler refuses a
//! self-service rule that a protected entry names, or that a route could apply to a resource a
//! protected entry covers. "Could" is judged on the patterns alone, conservatively.

use std::collections::HashMap;

use super::PolicyError;
use crate::policy::model::{ApprovalRule, PolicyFile};

/// Refuse self-service where a protected resource could be reached.
pub(super) fn check(
    file: &PolicyFile,
    rules: &HashMap<String, ApprovalRule>,
) -> Result<(), PolicyError> {
    let self_service = |id: &str| {
        rules
            .get(id)
            .is_some_and(|r| r.approvers == 0 || r.rollback_approvers == Some(0))
    };
    for p in &file.protected {
        if self_service(&p.approval.value) {
            return Err(PolicyError::at(
                &p.approval,
                format!(
                    "protected entry `{}` uses `{}`, a self-service rule (approvers: 0, or \
                     rollback_approvers: 0); protected resources need at least one approver, \
                     for a roll back too",
                    p.id.value, p.approval.value
                ),
            ));
        }
    }
    for route in file
        .approvals
        .routes
        .iter()
        .filter(|r| self_service(&r.rule.value))
    {
        for pattern in &route.resources {
            let hit = file.protected.iter().find_map(|p| {
                p.resources
                    .iter()
                    .find(|q| could_overlap(&pattern.value, &q.value))
                    .map(|q| (p, q))
            });
            if let Some((p, q)) = hit {
                return Err(PolicyError::at(
                    pattern,
                    format!(
                        "route `{}` → self-service rule `{}` could reach `{}`, which protected \
                         entry `{}` covers; narrow the route or give the rule approvers",
                        pattern.value, route.rule.value, q.value, p.id.value
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Whether some resource could match both patterns. A protected `kube:<cluster>/<ns>` also
/// covers the cluster's cluster-scoped objects (`kube:<cluster>`), so its cluster part is
/// compared too.
pub(crate) fn could_overlap(a: &str, b: &str) -> bool {
    let cluster = |p: &str| {
        p.strip_prefix("kube:")
            .and_then(|rest| rest.split_once('/'))
            .map(|(c, _)| format!("kube:{c}"))
    };
    globs_intersect(a, b)
        || cluster(b).is_some_and(|c| globs_intersect(a, &c))
        || cluster(a).is_some_and(|c| globs_intersect(&c, b))
}

/// Whether two `*`/`?` globs share a matching string (`*` matches any run, `/` included).
fn globs_intersect(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // reach[i][j]: the prefixes a[..i] and b[..j] can match one common string.
    let mut reach = vec![vec![false; b.len() + 1]; a.len() + 1];
    reach[0][0] = true;
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            if !reach[i][j] {
                continue;
            }
            step(&a, &b, i, j, &mut reach);
        }
    }
    reach[a.len()][b.len()]
}

/// From a reachable (i, j), what the next characters allow.
fn step(a: &[char], b: &[char], i: usize, j: usize, reach: &mut [Vec<bool>]) {
    let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
    // A star may match nothing more.
    if ca == Some('*') {
        reach[i + 1][j] = true;
    }
    if cb == Some('*') {
        reach[i][j + 1] = true;
    }
    // Both consume one character of the common string.
    if let (Some(x), Some(y)) = (ca, cb) {
        let one = |c: char| c == '*' || c == '?';
        if one(x) || one(y) || x == y {
            let ni = if x == '*' { i } else { i + 1 };
            let nj = if y == '*' { j } else { j + 1 };
            if (ni, nj) != (i, j) {
                reach[ni][nj] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::could_overlap;

    #[test]
    fn overlap_of_patterns() {
        for (a, b) in [
            ("*", "kube:production/*"),
            ("kube:*/web", "kube:production/*"),
            ("service:api/*", "service:*/production"),
            ("kube:prod?ction/web", "kube:production/*"),
            // Cluster-scoped objects of a protected cluster.
            ("kube:production", "kube:production/*"),
            ("kube:p*", "kube:*/prod"),
        ] {
            assert!(could_overlap(a, b), "{a} ∩ {b}");
        }
        for (a, b) in [
            ("kube:staging/*", "kube:production/*"),
            ("service:api/staging", "service:*/production"),
            ("aws:staging-readonly", "aws:prod-readonly"),
            ("stack:network", "kube:*/prod"),
            ("kube:staging", "kube:production/*"),
        ] {
            assert!(!could_overlap(a, b), "{a} ∩ {b}");
        }
    }
}
