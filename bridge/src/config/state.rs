//! The `state:` section: where replicas share their state. Unset, the bridge keeps it embedded
//! (redb files and in-process queues), which is right for one replica and the demo. With a Redis
//! URL or Sentinels, every replica sharing that Redis behaves as one bridge.

use std::fmt;

use serde::Deserialize;

use super::{Env, Secret, SecretSource, de_secret, secret};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
// The field names are the documented keys (`state.redis_url`…).
#[allow(clippy::struct_field_names)]
pub(super) struct FileState {
    /// `redis://` or `rediss://` (TLS); `SLIPWAY_REDIS_URL` overrides it.
    redis_url: Option<String>,
    /// Sentinel addresses (`host:port`); `SLIPWAY_REDIS_SENTINELS` (comma-separated, optionally
    /// `master@host:port,host:port`) overrides them.
    #[serde(default)]
    redis_sentinels: Vec<String>,
    /// The master name the Sentinels watch (default `mymaster`; `SLIPWAY_REDIS_MASTER`).
    redis_master: Option<String>,
    /// TLS to the master found through Sentinel (`SLIPWAY_REDIS_TLS=1`).
    redis_tls: Option<bool>,
    /// An ACL user (`SLIPWAY_REDIS_USERNAME`).
    redis_username: Option<String>,
    /// Its password, as a secret reference (`SLIPWAY_REDIS_PASSWORD`).
    #[serde(default, deserialize_with = "de_secret")]
    redis_password: Option<SecretSource>,
    /// Prefix of every key Slipway writes (default `slipway:`), so one Redis can serve several
    /// installations.
    redis_prefix: Option<String>,
}

/// How to reach Redis.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server: `redis://host:port/db` or `rediss://…`.
    Url(String),
    /// The current master of `master`, as the Sentinels report it.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
        tls: bool,
    },
}

impl fmt::Debug for RedisTarget {
    /// A URL may carry a password (`redis://:pw@host`): only its scheme and host are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTarget::Url(u) => match url::Url::parse(u) {
                Ok(p) => write!(
                    f,
                    "Url({}://{}:{})",
                    p.scheme(),
                    p.host_str().unwrap_or("?"),
                    p.port().unwrap_or(6379)
                ),
                Err(_) => f.write_str("Url(<unparsable>)"),
            },
            RedisTarget::Sentinel {
                sentinels,
                master,
                tls,
            } => f
                .debug_struct("Sentinel")
                .field("sentinels", sentinels)
                .field("master", master)
                .field("tls", tls)
                .finish(),
        }
    }
}

/// The shared-state settings: `None` means embedded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    pub target: RedisTarget,
    pub username: Option<String>,
    pub password: Secret,
    pub prefix: String,
}

/// The shared-state settings from the environment alone (`SLIPWAY_REDIS_*`), for the CLI.
pub fn from_env(env: Env<'_>) -> Result<Option<RedisConfig>, String> {
    load(&FileState::default(), env)
}

pub(super) fn load(file: &FileState, env: Env<'_>) -> Result<Option<RedisConfig>, String> {
    let url = env("SLIPWAY_REDIS_URL")
        .filter(|s| !s.is_empty())
        .or_else(|| file.redis_url.clone());
    let sentinels_env = env("SLIPWAY_REDIS_SENTINELS").filter(|s| !s.is_empty());
    let (named_master, sentinels) = match &sentinels_env {
        Some(s) => parse_sentinels(s),
        None => (None, file.redis_sentinels.clone()),
    };
    let target = match (url, sentinels.is_empty()) {
        (None, true) => return Ok(None),
        (Some(_), false) => {
            return Err(
                "both a Redis URL and Redis Sentinels are set: set SLIPWAY_REDIS_URL \
                 (`state.redis_url`) for one server, or SLIPWAY_REDIS_SENTINELS \
                 (`state.redis_sentinels`) to find the master through Sentinel, not both"
                    .into(),
            );
        }
        (Some(u), true) => RedisTarget::Url(check_url(&u)?),
        (None, false) => RedisTarget::Sentinel {
            sentinels: check_sentinels(sentinels)?,
            master: named_master
                .or_else(|| env("SLIPWAY_REDIS_MASTER"))
                .or_else(|| file.redis_master.clone())
                .unwrap_or_else(|| "mymaster".into()),
            tls: match env("SLIPWAY_REDIS_TLS").as_deref() {
                Some("1" | "true") => true,
                Some("0" | "false") => false,
                Some(other) => {
                    return Err(format!(
                        "SLIPWAY_REDIS_TLS is `{other}`: set it to 1 (TLS to the master) or 0"
                    ));
                }
                None => file.redis_tls.unwrap_or(false),
            },
        },
    };
    let password = secret(
        env,
        "SLIPWAY_REDIS_PASSWORD",
        file.redis_password.as_ref(),
        "state.redis_password",
    )?;
    let prefix = env("SLIPWAY_REDIS_PREFIX")
        .or_else(|| file.redis_prefix.clone())
        .unwrap_or_else(|| "slipway:".into());
    Ok(Some(RedisConfig {
        target,
        username: env("SLIPWAY_REDIS_USERNAME").or_else(|| file.redis_username.clone()),
        password,
        prefix,
    }))
}

/// `mymaster@h1:26379,h2:26379` or `h1:26379,h2:26379`.
fn parse_sentinels(s: &str) -> (Option<String>, Vec<String>) {
    let (master, list) = match s.split_once('@') {
        Some((m, rest)) => (Some(m.trim().to_string()), rest),
        None => (None, s),
    };
    let addrs = list
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    (master, addrs)
}

fn check_url(u: &str) -> Result<String, String> {
    let parsed = url::Url::parse(u).map_err(|_| {
        "the Redis URL (SLIPWAY_REDIS_URL or `state.redis_url`) is not a URL: use \
         redis://host:6379/0 or rediss://host:6380/0"
            .to_string()
    })?;
    if !matches!(parsed.scheme(), "redis" | "rediss") {
        return Err(format!(
            "the Redis URL scheme is `{}`: use redis:// (plain) or rediss:// (TLS)",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the Redis URL has no host: use redis://host:6379/0".into());
    }
    Ok(u.to_string())
}

fn check_sentinels(list: Vec<String>) -> Result<Vec<String>, String> {
    for a in &list {
        let ok = a
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(format!(
                "Redis Sentinel address `{a}` is not host:port (SLIPWAY_REDIS_SENTINELS or \
                 `state.redis_sentinels`)"
            ));
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let pairs = pairs.to_vec();
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_string())
        }
    }

    #[test]
    fn no_redis_means_embedded_and_a_url_or_sentinels_mean_shared() {
        let none = load(&FileState::default(), &env_of(&[])).unwrap();
        assert_eq!(none, None);
        let url = load(
            &FileState::default(),
            &env_of(&[("SLIPWAY_REDIS_URL", "rediss://:pw@cache:6380/2")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            url.target,
            RedisTarget::Url("rediss://:pw@cache:6380/2".into())
        );
        assert_eq!(url.prefix, "slipway:");
        let s = load(
            &FileState::default(),
            &env_of(&[(
                "SLIPWAY_REDIS_SENTINELS",
                "prod@10.0.0.1:26379, 10.0.0.2:26379",
            )]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            s.target,
            RedisTarget::Sentinel {
                sentinels: vec!["10.0.0.1:26379".into(), "10.0.0.2:26379".into()],
                master: "prod".into(),
                tls: false
            }
        );
    }

    #[test]
    fn bad_redis_settings_are_refused_with_what_to_set() {
        for (vars, wanted) in [
            (
                vec![("SLIPWAY_REDIS_URL", "http://cache:6379")],
                "redis:// (plain) or rediss://",
            ),
            (vec![("SLIPWAY_REDIS_URL", "cache:6379")], "use redis://"),
            (vec![("SLIPWAY_REDIS_URL", "redis://")], "no host"),
            (vec![("SLIPWAY_REDIS_SENTINELS", "cache")], "not host:port"),
            (
                vec![
                    ("SLIPWAY_REDIS_URL", "redis://a:1"),
                    ("SLIPWAY_REDIS_SENTINELS", "b:2"),
                ],
                "not both",
            ),
        ] {
            let env = move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_string())
            };
            let e = load(&FileState::default(), &env).unwrap_err();
            assert!(e.contains(wanted), "{e}");
        }
    }

    #[test]
    fn the_redis_password_is_never_shown() {
        let c = load(
            &FileState::default(),
            &env_of(&[
                ("SLIPWAY_REDIS_URL", "redis://user:hunter2-url@cache:6379/0"),
                ("SLIPWAY_REDIS_PASSWORD", "hunter2-acl"),
            ]),
        )
        .unwrap()
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("cache"), "{shown}");
    }
}
