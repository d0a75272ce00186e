//! Secret values and where they come from. A value is given literally, as `{ env: NAME }`,
//! `{ file: PATH }`, or as a reference into a secret store: `{ vault: "secret/data/x#key" }`,
//! `{ aws_secretsmanager: "<arn or name>#key" }`, `{ gcp_secretmanager: "projects/…#key" }`.
//!
//! A [`Secret`] is a shared cell: every clone sees the value the refresher last wrote, so a
//! rotation reaches each reader without a restart. It never prints.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::Deserialize;
use slipway_infra::secret_store::SecretRef;
use slipway_infra::sync::{read, write};

use super::Env;

/// A secret value. `Debug` shows `***`; there is no `Display`.
#[derive(Clone)]
pub struct Secret(Arc<RwLock<Values>>);

struct Values {
    current: Arc<str>,
    /// The value a rotation replaced, accepted where a peer may still sign with it, until the
    /// unix time given.
    previous: Option<(Arc<str>, i64)>,
    /// Bumped by each rotation, so what was built from the value knows to rebuild
    /// ([`super::Live`]).
    version: u64,
}

/// A borrowed look at a secret's value, kept alive while in use.
pub struct Exposed(Arc<str>);

impl fmt::Debug for Exposed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Deref for Exposed {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Default for Secret {
    fn default() -> Self {
        Secret::new("")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        *self.expose() == *other.expose()
    }
}
impl Eq for Secret {}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let current: Arc<str> = Arc::from(value.into());
        Self(Arc::new(RwLock::new(Values {
            current,
            previous: None,
            version: 0,
        })))
    }

    /// The current value.
    pub fn expose(&self) -> Exposed {
        Exposed(read(&self.0).current.clone())
    }

    pub fn is_empty(&self) -> bool {
        read(&self.0).current.is_empty()
    }

    /// The values a peer's signature may be checked against at `now`: the current one, then
    /// the one it replaced while the rotation's grace lasts.
    pub fn accepted(&self, now: i64) -> (Exposed, Option<Exposed>) {
        let v = read(&self.0);
        let previous = v
            .previous
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(p, _)| Exposed(p.clone()));
        (Exposed(v.current.clone()), previous)
    }

    /// Put `value` in force; the old one stays accepted until `grace_until`. False (and
    /// nothing changes) when the value is the same.
    pub fn rotate(&self, value: &str, grace_until: i64) -> bool {
        let mut v = write(&self.0);
        if *v.current == *value {
            return false;
        }
        let old = std::mem::replace(&mut v.current, Arc::from(value));
        v.previous = Some((old, grace_until));
        v.version += 1;
        true
    }

    /// This secret as a credential a client reads at each use, so it follows rotations.
    pub fn credential(&self) -> slipway_infra::credential::Credential {
        let cell = self.clone();
        slipway_infra::credential::Credential::live(move || cell.expose().to_string())
    }

    /// How many rotations this cell has seen.
    pub fn version(&self) -> u64 {
        read(&self.0).version
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_empty() {
            "Secret(<unset>)"
        } else {
            "Secret(***)"
        })
    }
}

/// Where a secret comes from, as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum SecretSource {
    Value(String),
    Env { env: String },
    File { file: PathBuf },
    Vault { vault: String },
    AwsSecretsManager { aws_secretsmanager: String },
    GcpSecretManager { gcp_secretmanager: String },
}

impl SecretSource {
    /// The store reference, if this is one (the text was checked when the file was read).
    pub(super) fn reference(&self) -> Option<Result<SecretRef, String>> {
        match self {
            SecretSource::Vault { vault } => Some(SecretRef::vault(vault)),
            SecretSource::AwsSecretsManager { aws_secretsmanager } => {
                Some(SecretRef::aws(aws_secretsmanager))
            }
            SecretSource::GcpSecretManager { gcp_secretmanager } => {
                Some(SecretRef::gcp(gcp_secretmanager))
            }
            _ => None,
        }
    }

    pub(super) fn load(&self, what: &str, vars: Env<'_>) -> Result<Secret, String> {
        match self {
            SecretSource::Value(v) => Ok(Secret::new(v.clone())),
            SecretSource::Env { env } => vars(env)
                .map(Secret::new)
                .ok_or_else(|| format!("{what}: environment variable {env} is not set")),
            SecretSource::File { file } => std::fs::read_to_string(file)
                .map(|s| Secret::new(s.trim().to_string()))
                .map_err(|e| format!("{what}: can't read {}: {e}", file.display())),
            other => match other.reference() {
                Some(r) => resolved(&r?, what),
                None => Err(format!("{what}: not a secret store reference")),
            },
        }
    }
}

/// The live cell of a reference read at start.
fn resolved(r: &SecretRef, what: &str) -> Result<Secret, String> {
    RESOLVED.with_borrow(|resolved| {
        let Some(resolved) = resolved else {
            return Err(format!(
                "{what}: {r} is a secret store reference, which can't be used here (a secret \
                 store's own credentials must be a value, `env` or `file`)"
            ));
        };
        let secret = resolved
            .get(r)
            .cloned()
            .ok_or_else(|| format!("{what}: {r} was not read at start"))?;
        USED.with_borrow_mut(|used| used.push((r.clone(), what.to_string())));
        Ok(secret)
    })
}

thread_local! {
    /// The store references found while a config file was read, then their values while the
    /// rest of the file is loaded. Loading is synchronous, so this scopes to one load.
    static FOUND: RefCell<Vec<SecretRef>> = const { RefCell::new(Vec::new()) };
    static RESOLVED: RefCell<Option<BTreeMap<SecretRef, Secret>>> = const { RefCell::new(None) };
    /// Which settings took which reference, for the refresher's messages.
    static USED: RefCell<Vec<(SecretRef, String)>> = const { RefCell::new(Vec::new()) };
}

/// Every reference the file being read names, in order, once each.
pub(super) fn take_found() -> Vec<SecretRef> {
    let mut found = FOUND.take();
    let mut seen = std::collections::BTreeSet::new();
    found.retain(|r| seen.insert(r.clone()));
    found
}

/// Runs `f` with `resolved` as the values references load to.
pub(super) fn with_resolved<T>(resolved: BTreeMap<SecretRef, Secret>, f: impl FnOnce() -> T) -> T {
    RESOLVED.set(Some(resolved));
    USED.take();
    let out = f();
    RESOLVED.set(None);
    out
}

/// The settings each reference was loaded into, by [`with_resolved`]'s last run.
pub(super) fn take_used() -> Vec<(SecretRef, String)> {
    USED.take()
}

pub(super) fn de_secret<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SecretSource>, D::Error> {
    let src = Option::<SecretSource>::deserialize(d)?;
    if let Some(r) = src.as_ref().and_then(SecretSource::reference) {
        let r = r.map_err(serde::de::Error::custom)?;
        FOUND.with_borrow_mut(|found| found.push(r));
    }
    Ok(src)
}

/// A secret from its environment variable, else from the file's source, else empty.
pub(super) fn secret(
    env: Env<'_>,
    var: &str,
    src: Option<&SecretSource>,
    what: &str,
) -> Result<Secret, String> {
    match (env(var), src) {
        (Some(v), _) => Ok(Secret::new(v)),
        (None, Some(s)) => s.load(what, env),
        (None, None) => Ok(Secret::default()),
    }
}
