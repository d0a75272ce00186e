//! The `audit:` section: the key that signs the spool's checkpoints and the allowlist of writers,
//! where the spool is mirrored (S3 with Object Lock) and which sinks get the records (Jira, Loki,
//! ServiceNow, a signed webhook). Without `s3` the spool stays local only.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use slipway_core::audit::{EventKind, WriterAllowlist, WriterKeys};
use slipway_infra::s3::{Retention, RetentionMode, S3Settings, StaticCredentials};
use slipway_infra::sinks::jira::{JiraAuth, JiraSettings};
use slipway_infra::sinks::loki::LokiSettings;
use slipway_infra::sinks::servicenow::ServiceNowSettings;
use slipway_infra::sinks::webhook::WebhookSettings;

use super::{Env, Secret, SecretSource, check_url, de_secret};

/// COMPLIANCE retention cannot be shortened by anyone, so the days are never defaulted, and
/// capped at 100 years to catch a unit mistake.
const MAX_RETENTION_DAYS: u32 = 36_500;

/// How long one Jira, Loki, ServiceNow or webhook request may take.
const SINK_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAudit {
    signing: Option<FileSigning>,
    /// This instance's name (`SLIPWAY_AUDIT_WRITER`, e.g. the pod name); the writer id is
    /// `bridge:<name>`, by default `bridge:<host name>`.
    writer: Option<String>,
    #[serde(default)]
    writers: BTreeMap<String, WriterKeys>,
    s3: Option<FileS3>,
    jira: Option<FileJira>,
    loki: Option<super::loki::FileLoki>,
    servicenow: Option<super::servicenow::FileServiceNow>,
    webhook: Option<FileWebhook>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSigning {
    key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileS3 {
    bucket: Option<String>,
    prefix: Option<String>,
    region: Option<String>,
    endpoint_url: Option<String>,
    retention_mode: Option<String>,
    retention_days: Option<u32>,
    access_key_id: Option<String>,
    #[serde(default, deserialize_with = "de_secret")]
    secret_access_key: Option<SecretSource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJira {
    url: String,
    project: String,
    issue_type: Option<String>,
    user: Option<String>,
    #[serde(default, deserialize_with = "de_secret")]
    token: Option<SecretSource>,
    /// Record kind (`merge`, `execution`, …) → workflow transition name.
    #[serde(default)]
    transitions: HashMap<EventKind, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebhook {
    url: String,
    #[serde(default, deserialize_with = "de_secret")]
    secret: Option<SecretSource>,
}

/// The validated `audit:` section.
#[derive(Debug, Clone, Default)]
pub struct AuditConfig {
    /// The Ed25519 key that signs the spool's checkpoints (`SLIPWAY_AUDIT_SIGNING_KEY_FILE` or
    /// `audit.signing.key_file`); `serve` refuses to start without it.
    pub signing_key_file: Option<PathBuf>,
    /// Writers and their public keys (`audit.writers`); `None`: only this bridge, with its key.
    pub writers: Option<WriterAllowlist>,
    /// This bridge's writer id, `bridge:<SLIPWAY_AUDIT_WRITER or audit.writer>`: each replica
    /// needs its own, because each keeps its own hash chain. `None`: `bridge:<host name>`.
    pub writer: Option<String>,
    pub s3: Option<S3Settings>,
    pub jira: Option<JiraConfig>,
    pub loki: Option<LokiSettings>,
    /// The change map's path is set beside the spool when the sinks start.
    pub servicenow: Option<ServiceNowSettings>,
    pub webhook: Option<WebhookSettings>,
}

/// Jira settings; the issue map file is placed in the spool directory at startup.
#[derive(Debug, Clone)]
pub struct JiraConfig {
    pub url: String,
    pub project: String,
    pub issue_type: String,
    pub auth: JiraAuth,
    /// Record kind → the workflow transition (by name) its record performs.
    pub transitions: HashMap<EventKind, String>,
}

impl JiraConfig {
    /// The sink's settings, with its issue map beside the spool in `spool_dir`.
    pub fn settings(&self, spool_dir: &std::path::Path) -> JiraSettings {
        JiraSettings {
            url: self.url.clone(),
            project: self.project.clone(),
            issue_type: self.issue_type.clone(),
            auth: self.auth.clone(),
            issues_file: spool_dir.join("jira-issues.json"),
            transitions: self.transitions.clone(),
            timeout: SINK_TIMEOUT,
        }
    }
}

fn secret(src: Option<&SecretSource>, what: &str, env: Env<'_>) -> Result<Secret, String> {
    match src {
        Some(s) => s.load(what, env),
        None => Ok(Secret::default()),
    }
}

/// Endpoints other than AWS's own are for tests and local emulators only. The URL is parsed,
/// not split by hand: `https://127.0.0.1:1@evil.example` has the host `evil.example`.
fn check_loopback(url: &str, what: &str) -> Result<(), String> {
    if is_loopback_url(url) {
        return Ok(());
    }
    Err(format!(
        "{what} must be a loopback URL such as http://127.0.0.1:9000, without a user name or \
         password (it exists for tests and local S3-compatible servers; leave it unset for AWS): {}",
        redact_userinfo(url)
    ))
}

/// http(s), no userinfo, and a loopback host: `localhost`, 127.0.0.0/8 or `[::1]`.
fn is_loopback_url(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    if !matches!(parsed.scheme(), "http" | "https")
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return false;
    }
    match parsed.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The URL for an error message, without a password someone may have put in it.
fn redact_userinfo(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Builds the section from the file and the environment, reporting what to change.
pub(super) fn load(file: FileAudit, env: Env<'_>) -> Result<AuditConfig, String> {
    let s3_file = file.s3.unwrap_or_default();
    let bucket = env("SLIPWAY_AUDIT_S3_BUCKET").or(s3_file.bucket.clone());
    let s3 = match bucket {
        None => {
            if env("SLIPWAY_AUDIT_S3_ENDPOINT").is_some() || s3_file.endpoint_url.is_some() {
                return Err("an audit S3 endpoint is set but no bucket: set SLIPWAY_AUDIT_S3_BUCKET or `audit.s3.bucket`".into());
            }
            None
        }
        Some(bucket) => Some(load_s3(bucket, s3_file, env)?),
    };
    let jira = file.jira.map(|j| load_jira(j, env)).transpose()?;
    let loki = file
        .loki
        .map(|l| super::loki::load(l, env, SINK_TIMEOUT))
        .transpose()?;
    let servicenow = file
        .servicenow
        .map(|s| super::servicenow::load(s, env, SINK_TIMEOUT))
        .transpose()?;
    let webhook = file.webhook.map(|w| load_webhook(w, env)).transpose()?;
    let signing_key_file = env("SLIPWAY_AUDIT_SIGNING_KEY_FILE")
        .map(PathBuf::from)
        .or(file.signing.and_then(|s| s.key_file));
    let writers = if file.writers.is_empty() {
        None
    } else {
        Some(WriterAllowlist::from_config(&file.writers)?)
    };
    // The name of this instance (the pod name): the writer id is `bridge:<name>`.
    let writer = env("SLIPWAY_AUDIT_WRITER")
        .or(file.writer)
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty())
        .map(|w| {
            if w.starts_with("bridge:") {
                w
            } else {
                format!("bridge:{w}")
            }
        });
    Ok(AuditConfig {
        signing_key_file,
        writers,
        writer,
        s3,
        jira,
        loki,
        servicenow,
        webhook,
    })
}

fn load_webhook(w: FileWebhook, env: Env<'_>) -> Result<WebhookSettings, String> {
    check_url(&w.url, "audit.webhook.url")?;
    let secret = secret(w.secret.as_ref(), "audit.webhook.secret", env)?;
    if secret.is_empty() {
        return Err(
            "audit.webhook.secret is required: the receiver checks X-Slipway-Signature with it"
                .into(),
        );
    }
    Ok(WebhookSettings {
        url: w.url,
        secret: secret.credential(),
        timeout: SINK_TIMEOUT,
    })
}

fn load_s3(bucket: String, f: FileS3, env: Env<'_>) -> Result<S3Settings, String> {
    if bucket.is_empty() {
        return Err(
            "the audit S3 bucket name is empty (SLIPWAY_AUDIT_S3_BUCKET or `audit.s3.bucket`)"
                .into(),
        );
    }
    let days = match env("SLIPWAY_AUDIT_RETENTION_DAYS") {
        Some(s) => s.parse::<u32>().map_err(|_| {
            format!("SLIPWAY_AUDIT_RETENTION_DAYS=`{s}` is not a whole number of days")
        })?,
        None => f.retention_days.ok_or(
            "audit.s3.retention_days (or SLIPWAY_AUDIT_RETENTION_DAYS) is required with a bucket: \
             Object Lock retention cannot be shortened later, so choose it deliberately",
        )?,
    };
    if days == 0 || days > MAX_RETENTION_DAYS {
        return Err(format!(
            "audit retention of {days} days is out of range: use 1 to {MAX_RETENTION_DAYS}"
        ));
    }
    let mode = match &f.retention_mode {
        None => RetentionMode::Compliance,
        Some(m) => m
            .parse::<RetentionMode>()
            .map_err(|e| format!("audit.s3.retention_mode: {e}"))?,
    };
    let endpoint_url = env("SLIPWAY_AUDIT_S3_ENDPOINT").or(f.endpoint_url);
    if let Some(url) = &endpoint_url {
        check_loopback(
            url,
            "the audit S3 endpoint (SLIPWAY_AUDIT_S3_ENDPOINT or `audit.s3.endpoint_url`)",
        )?;
    }
    let secret_key = secret(
        f.secret_access_key.as_ref(),
        "audit.s3.secret_access_key",
        env,
    )?;
    let credentials = match (f.access_key_id, secret_key.is_empty()) {
        (None, true) => None,
        (Some(id), false) => Some(StaticCredentials {
            access_key_id: id,
            secret_access_key: secret_key.credential(),
        }),
        _ => {
            return Err("audit.s3.access_key_id and audit.s3.secret_access_key go together: set both, or neither to use the AWS default credential chain".into());
        }
    };
    let mut settings = S3Settings::new(bucket, f.prefix.unwrap_or_else(|| "slipway".into()), days);
    settings.region = env("SLIPWAY_AUDIT_S3_REGION").or(f.region);
    settings.endpoint_url = endpoint_url;
    settings.retention = Retention { mode, days };
    settings.credentials = credentials;
    Ok(settings)
}

fn load_jira(j: FileJira, env: Env<'_>) -> Result<JiraConfig, String> {
    check_url(&j.url, "audit.jira.url")?;
    if j.project.trim().is_empty() {
        return Err("audit.jira.project is empty: give the project key, e.g. OPS".into());
    }
    let token = secret(j.token.as_ref(), "audit.jira.token", env)?;
    if token.is_empty() {
        return Err("audit.jira.token is required (an API token with `user`, or a personal access token without)".into());
    }
    let token = token.credential();
    let auth = match j.user {
        Some(user) => JiraAuth::Basic { user, token },
        None => JiraAuth::Bearer { token },
    };
    if let Some((kind, _)) = j.transitions.iter().find(|(_, n)| n.trim().is_empty()) {
        return Err(format!(
            "audit.jira.transitions.{}: the transition name is empty: give the name Jira shows on \
             the issue's workflow button, e.g. Done",
            serde_json::to_value(kind).unwrap_or_default()
        ));
    }
    Ok(JiraConfig {
        transitions: j.transitions,
        url: j.url.trim_end_matches('/').to_string(),
        project: j.project,
        issue_type: j.issue_type.unwrap_or_else(|| "Task".into()),
        auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> FileAudit {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn s3_defaults_and_env_overrides() {
        let f = parse("s3:\n  bucket: audit\n  retention_days: 30\n");
        let c = load(f, &no_env).unwrap();
        let s3 = c.s3.unwrap();
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str()),
            ("audit", "slipway")
        );
        assert_eq!(s3.retention.mode, RetentionMode::Compliance);
        assert_eq!(s3.retention.days, 30);
        assert!(c.jira.is_none() && c.webhook.is_none());

        let env = |k: &str| match k {
            "SLIPWAY_AUDIT_S3_BUCKET" => Some("other".to_string()),
            "SLIPWAY_AUDIT_S3_ENDPOINT" => Some("http://127.0.0.1:5000".to_string()),
            "SLIPWAY_AUDIT_S3_REGION" => Some("eu-west-1".to_string()),
            "SLIPWAY_AUDIT_RETENTION_DAYS" => Some("7".to_string()),
            _ => None,
        };
        let s3 = load(FileAudit::default(), &env).unwrap().s3.unwrap();
        assert_eq!(s3.bucket, "other");
        assert_eq!(s3.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s3.retention.days, 7);
    }

    #[test]
    fn mistakes_are_explained() {
        let err = |yaml: &str| load(parse(yaml), &no_env).unwrap_err();
        assert!(err("s3:\n  bucket: audit\n").contains("retention_days"));
        assert!(err("s3:\n  bucket: a\n  retention_days: 0\n").contains("1 to"));
        assert!(
            err("s3:\n  bucket: a\n  retention_days: 1\n  retention_mode: hold\n")
                .contains("COMPLIANCE")
        );
        assert!(
            err("s3:\n  bucket: a\n  retention_days: 1\n  endpoint_url: https://s3.evil.example\n")
                .contains("loopback")
        );
        assert!(
            err("s3:\n  bucket: a\n  retention_days: 1\n  access_key_id: AKIA\n")
                .contains("go together")
        );
        assert!(err("s3:\n  endpoint_url: http://127.0.0.1:1\n").contains("no bucket"));
        assert!(err("webhook:\n  url: https://hooks.example/x\n").contains("secret"));
        assert!(err("webhook:\n  url: http://hooks.example/x\n  secret: s\n").contains("https"));
        assert!(
            err("jira:\n  url: https://acme.atlassian.net\n  project: OPS\n").contains("token")
        );
        let e =
            serde_saphyr::from_str::<FileAudit>("s3:\n  bucket: a\n  retention: 5\n").unwrap_err();
        assert!(e.to_string().contains("retention"), "{e}");
    }

    #[test]
    fn signing_key_and_writers() {
        let key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let c = load(
            parse(&format!(
                "signing:\n  key_file: /run/secrets/audit.key\nwriters:\n  \"bridge:*\": \"{key}\"\n  \"runner:*\": [\"{key}\"]\n"
            )),
            &no_env,
        )
        .unwrap();
        assert_eq!(
            c.signing_key_file.as_deref(),
            Some(std::path::Path::new("/run/secrets/audit.key"))
        );
        let writers = c.writers.unwrap();
        assert!(writers.allows("runner:42-1") && !writers.allows("evil:1"));
        let e = load(parse(&format!("writers:\n  \"*\": {key}\n")), &no_env).unwrap_err();
        assert!(e.contains("bare"), "{e}");
        let e = load(parse("writers:\n  \"bridge:*\": []\n"), &no_env).unwrap_err();
        assert!(e.contains("lists no key"), "{e}");
        let env = |k: &str| (k == "SLIPWAY_AUDIT_SIGNING_KEY_FILE").then(|| "/k".to_string());
        assert_eq!(
            load(FileAudit::default(), &env).unwrap().signing_key_file,
            Some(PathBuf::from("/k"))
        );
    }

    #[test]
    fn jira_and_webhook() {
        let c = load(
            parse(
                "jira:\n  url: https://acme.atlassian.net/\n  project: OPS\n  user: bot@acme.test\n  token: t0k\n  transitions: {merge: In Progress, execution: Done}\n\
                 webhook:\n  url: http://127.0.0.1:9/hook\n  secret: shh\n",
            ),
            &no_env,
        )
        .unwrap();
        let jira = c.jira.unwrap();
        assert_eq!(jira.url, "https://acme.atlassian.net");
        assert_eq!(jira.issue_type, "Task");
        assert!(matches!(jira.auth, JiraAuth::Basic { .. }));
        assert_eq!(jira.transitions[&EventKind::Merge], "In Progress");
        assert_eq!(jira.transitions[&EventKind::Execution], "Done");
        let err = |yaml: &str| load(parse(yaml), &no_env).unwrap_err();
        let e = serde_saphyr::from_str::<FileAudit>(
            "jira:\n  url: https://a.example\n  project: OPS\n  token: t\n  transitions: {merged: Done}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("merged"), "{e}");
        assert!(
            err("jira:\n  url: https://a.example\n  project: OPS\n  token: t\n  transitions: {merge: \"\"}\n")
                .contains("empty")
        );
        assert!(!format!("{jira:?}").contains("t0k"));
        let hook = c.webhook.unwrap();
        assert_eq!(hook.secret.get(), "shh");
        assert!(!format!("{hook:?}").contains("shh"));
    }

    /// The old check split the text at `/` and `:`, so userinfo that looked like a loopback
    /// host sent the audit trail (and its credentials) to another server.
    #[test]
    fn loopback_endpoints_are_parsed_not_split() {
        for ok in [
            "http://127.0.0.1:9000",
            "https://127.0.0.1:9000/",
            "http://localhost:4566",
            "http://[::1]:9000",
            "http://127.0.0.2:9000",
        ] {
            check_loopback(ok, "endpoint").unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for attack in [
            "https://127.0.0.1:1@evil.example",
            "http://127.0.0.1@evil.example:9000",
            "http://localhost:x@evil.example/",
            "http://user@127.0.0.1:9000",
            "http://127.0.0.1.evil.example:9000",
            "http://localhost.evil.example",
            "ftp://127.0.0.1/",
            "127.0.0.1:9000",
        ] {
            let e = check_loopback(attack, "endpoint").unwrap_err();
            assert!(e.contains("loopback"), "{attack}: {e}");
        }
        let e = check_loopback("http://u:hunter2@evil.example", "endpoint").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
