//! Secret Manager (`secretmanager.v1` discovery document), under `/secretmanager/v1/`:
//! `projects.secrets.versions.access` (`GET …/versions/{version}:access`), the one call a
//! reader of secrets makes. Versions are numbered from 1; `latest` is the newest. Access needs
//! `roles/secretmanager.secretAccessor` (or owner) on the project: a viewer can't read payloads,
//! as on Google. The answer names the version by project number and carries the payload as
//! base64 with its CRC32C as a decimal int64 string.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use base64::Engine as _;
use serde_json::json;

use super::auth::{Reply, authenticate, denied, granted, not_found, ok};
use super::state::{Kind, Shared, lock};

/// Roles that read secret payloads.
pub(crate) const ACCESS_ROLES: [&str; 2] = ["roles/secretmanager.secretAccessor", "roles/owner"];

/// `GET projects/{project}/secrets/{secret}/versions/{version}:access`.
pub(crate) async fn access(
    State(s): State<Shared>,
    Path((project, secret, version)): Path<(String, String, String)>,
    h: HeaderMap,
) -> Reply {
    let st = lock(&s);
    let token = authenticate(&st, &h)?;
    let version = version
        .strip_suffix(":access")
        .ok_or_else(|| not_found("Not Found"))?;
    let resource = format!("projects/{project}/secrets/{secret}/versions/{version}");
    let p = st
        .project(&project)
        .filter(|p| granted(&p.bindings, &ACCESS_ROLES, token))
        .ok_or_else(|| denied("secretmanager.versions.access", &resource))?;
    let versions: Vec<String> = st
        .get(Kind::Secret, &p.id, "", &secret)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let n = match version {
        "latest" => versions.len(),
        n => n.parse().unwrap_or(0),
    };
    let data = n
        .checked_sub(1)
        .and_then(|i| versions.get(i))
        .ok_or_else(|| {
            not_found(&format!(
                "Secret Version [projects/{}/secrets/{secret}/versions/{version}] not found.",
                p.number
            ))
        })?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap_or_default();
    Ok(ok(&json!({
        "name": format!("projects/{}/secrets/{secret}/versions/{n}", p.number),
        "payload": {"data": data, "dataCrc32c": crc32c(&bytes).to_string()},
    })))
}

/// CRC-32C (Castagnoli), bit by bit: the emulator's payloads are small.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(super::crc32c(b"123456789"), 0xE306_9283);
    }
}
