//! Cloud Storage's JSON API (`storage.v1` discovery document), under `/storage/v1/`:
//! `buckets.list` (`GET b?project=`, which gcloud storage sends with `projection=full`) and
//! `buckets.get` (`GET b/{bucket}`, read on the bucket's project). Buckets carry `kind`,
//! `selfLink`, `projectNumber` (a uint64 string), location, class, uniform access and times.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::auth::{Reply, authenticate, bad_request, denied, not_found, ok, read_project};
use super::state::{Kind, Project, Shared, lock};

const CREATED: &str = "2026-01-05T17:00:00.000Z";

/// A bucket in `location` (`US-CENTRAL1`, `EU`…) with uniform bucket-level access.
pub(crate) fn bucket(p: &Project, name: &str, location: &str) -> Value {
    let location = location.to_ascii_uppercase();
    let location_type = if location.contains('-') {
        "region"
    } else {
        "multi-region"
    };
    json!({
        "kind": "storage#bucket",
        "selfLink": format!("https://www.googleapis.com/storage/v1/b/{name}"),
        "id": name,
        "name": name,
        "projectNumber": p.number.to_string(),
        "generation": "1767632400000000",
        "metageneration": "1",
        "location": location,
        "storageClass": "STANDARD",
        "etag": "CAE=",
        "timeCreated": CREATED,
        "updated": CREATED,
        "iamConfiguration": {
            "bucketPolicyOnly": {"enabled": true, "lockedTime": "2026-04-05T17:00:00.000Z"},
            "uniformBucketLevelAccess": {"enabled": true, "lockedTime": "2026-04-05T17:00:00.000Z"},
            "publicAccessPrevention": "enforced",
        },
        "locationType": location_type,
        "rpo": "DEFAULT",
        "softDeletePolicy": {"retentionDurationSeconds": "604800", "effectiveTime": CREATED},
    })
}

/// `GET b?project=`.
pub(crate) async fn buckets_list(
    State(s): State<Shared>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let st = lock(&s);
    authenticate(&st, &h)?;
    let project = q
        .get("project")
        .ok_or_else(|| bad_request("Required parameter: project"))?;
    let p = read_project(&st, &h, project, "storage.buckets.list")?;
    let items = st.list(Kind::Bucket, &p.id, None);
    Ok(ok(&json!({"kind": "storage#buckets", "items": items})))
}

/// `GET b/{bucket}`.
pub(crate) async fn bucket_get(
    State(s): State<Shared>,
    Path(name): Path<String>,
    h: HeaderMap,
    _q: Query<HashMap<String, String>>,
) -> Reply {
    let st = lock(&s);
    authenticate(&st, &h)?;
    let (project, bucket) = st
        .resources
        .iter()
        .find(|((k, _, _, n), _)| *k == Kind::Bucket && *n == name)
        .map(|((_, p, _, _), v)| (p, v))
        .ok_or_else(|| not_found("The specified bucket does not exist."))?;
    read_project(&st, &h, project, "storage.buckets.get")
        .map_err(|_| denied("storage.buckets.get", &format!("projects/_/buckets/{name}")))?;
    Ok(ok(bucket))
}
