//! The GitHub side of the configuration that decides what the bridge trusts: the services whose
//! CI builds `/deploy` takes, and the login the runner reports as.

use std::collections::BTreeMap;

use super::Env;

/// `gitops.services`, each checked.
pub(super) fn services(
    s: &BTreeMap<String, super::gitops::ServiceConfig>,
) -> Result<BTreeMap<String, super::gitops::ServiceConfig>, String> {
    s.iter().try_for_each(|(name, svc)| svc.check(name))?;
    Ok(s.clone())
}

/// `SLIPWAY_RUNNER_LOGIN` / `github.runner_login`, default `github-actions[bot]`.
pub(super) fn runner_login(env: Env<'_>, file: Option<String>) -> Result<String, String> {
    let login = env("SLIPWAY_RUNNER_LOGIN")
        .or(file)
        .unwrap_or_else(|| super::gitops::DEFAULT_RUNNER_LOGIN.into());
    let login = login.trim();
    if login.is_empty() || login.contains(char::is_whitespace) {
        return Err(format!(
            "the runner's GitHub login `{login}` is not a login: set SLIPWAY_RUNNER_LOGIN or `github.runner_login` to the account the runner comments as (default {}, the login of a workflow's GITHUB_TOKEN)",
            super::gitops::DEFAULT_RUNNER_LOGIN
        ));
    }
    Ok(login.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_login_defaults_to_the_job_token_and_refuses_blanks() {
        let none = |_: &str| None;
        assert_eq!(runner_login(&none, None).unwrap(), "github-actions[bot]");
        assert_eq!(
            runner_login(&none, Some("deployer[bot]".into())).unwrap(),
            "deployer[bot]"
        );
        let env = |k: &str| (k == "SLIPWAY_RUNNER_LOGIN").then(|| "  ".to_string());
        let e = runner_login(&env, None).unwrap_err();
        assert!(e.contains("SLIPWAY_RUNNER_LOGIN"), "{e}");
    }

    #[test]
    fn services_name_the_bad_key() {
        let svc: crate::config::gitops::ServiceConfig = serde_saphyr::from_str(
            "repo: acme/api\nimage: registry.example/api\nworkflow: ../ci.yml\n",
        )
        .unwrap();
        let e = services(&BTreeMap::from([("api".to_string(), svc)])).unwrap_err();
        assert!(e.contains("gitops.services.api.workflow"), "{e}");
    }
}
