//! `audit.servicenow`: the instance the ServiceNow sink files Change Requests in (see
//! `slipway_infra::sinks::servicenow`), how it signs in, and the state each record kind moves a
//! change to.

use std::collections::HashMap;

use serde::Deserialize;
use slipway_core::audit::EventKind;
use slipway_infra::sinks::servicenow::ServiceNowSettings;

use super::{Env, SecretSource, check_url, de_secret};

/// The change model's state values (`-5` New, `-4` Assess, `-3` Authorize, `-2` Scheduled,
/// `-1` Implement, `0` Review, `3` Closed, `4` Canceled).
const STATES: [&str; 8] = ["-5", "-4", "-3", "-2", "-1", "0", "3", "4"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileServiceNow {
    url: String,
    user: Option<String>,
    #[serde(default, deserialize_with = "de_secret")]
    password: Option<SecretSource>,
    #[serde(default, deserialize_with = "de_secret")]
    token: Option<SecretSource>,
    #[serde(default)]
    states: HashMap<EventKind, String>,
    /// Hold a change PR's merge until its ServiceNow change request is CAB-approved.
    #[serde(default)]
    cab_gate: bool,
}

/// Validates the section; the change map's path is set when the sinks start.
pub(super) fn load(
    f: FileServiceNow,
    env: Env<'_>,
    timeout: std::time::Duration,
) -> Result<ServiceNowSettings, String> {
    check_url(&f.url, "audit.servicenow.url")?;
    let section = "audit.servicenow";
    let auth = super::loki::sign_in(section, f.user, f.password.as_ref(), f.token.as_ref(), env)?
        .ok_or(
        "audit.servicenow: sign in with `user` and `password` (basic auth) or with `token` \
             (an OAuth bearer token): one of the two is required",
    )?;
    if let Some((kind, state)) = f.states.iter().find(|(_, s)| !STATES.contains(&s.as_str())) {
        return Err(format!(
            "audit.servicenow.states.{}: `{state}` is not a change request state; use one of {} \
             (-1 Implement, 0 Review, 3 Closed, …)",
            serde_json::to_value(kind).unwrap_or_default(),
            STATES.join(", ")
        ));
    }
    Ok(ServiceNowSettings {
        url: f.url.trim_end_matches('/').to_string(),
        auth,
        states: f.states,
        changes_file: std::path::PathBuf::from("servicenow-changes.json"),
        timeout,
        cab_gate: f.cab_gate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ServiceNowSettings, String> {
        let f: FileServiceNow = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        load(f, &|_| None, std::time::Duration::from_secs(1))
    }

    #[test]
    fn servicenow_settings_and_mistakes() {
        let s = parse(
            "url: https://acme.service-now.com/\nuser: slipway\npassword: pw\nstates: {merge: \"-1\", execution: \"3\"}\n",
        )
        .unwrap();
        assert_eq!(s.url, "https://acme.service-now.com");
        assert_eq!(s.states[&EventKind::Merge], "-1");
        assert!(!format!("{s:?}").contains("pw\""));
        let err = |yaml: &str| parse(yaml).unwrap_err();
        assert!(err("url: https://a.example\n").contains("required"));
        assert!(err("url: http://a.example\ntoken: t\n").contains("https"));
        assert!(
            err("url: https://a.example\ntoken: t\nstates: {merge: Implement}\n")
                .contains("not a change request state")
        );
        assert!(
            err("url: https://a.example\ntoken: t\nstates: {merged: \"3\"}\n").contains("merged")
        );
    }
}
