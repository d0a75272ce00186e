//! The Google emulator against Google's own description of the Directory API: the
//! `admin:directory_v1` discovery document that `google-api-python-client` ships, and that
//! package's real client (with `google-auth` signing the service account's assertion).
//!
//! - every method the emulator serves has the document's id, verb, path, request and response
//!   schema, and only parameters the document names, with the same scopes;
//! - every field of every response (User, Users, Group, Groups, Member, Members, Channel, and a
//!   push notification's body) exists in the document's schema with the JSON type it declares;
//! - `googleapiclient.discovery.build('admin', 'directory_v1')`, pointed at the emulator, pages
//!   through users, reads a user, groups and members, opens and stops a watch channel, and sees
//!   a wrong key and a missing scope refused the way it handles Google's refusals.
#![allow(clippy::unwrap_used)]
// Protocol scenario tests read top to bottom; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

mod google_support;

use std::collections::BTreeSet;
use std::time::Duration;

use google_support::{ADMIN, Receiver, SCOPES, access_token, call, discovery_document, domain};
use serde_json::{Value, json};
use slipway_emulators::discovery::{check, find_method};
use slipway_emulators::google::METHODS;

#[test]
fn the_emulators_methods_match_the_discovery_document() {
    let doc = discovery_document();
    assert_eq!(doc["name"], "admin");
    assert_eq!(doc["version"], "directory_v1");
    for spec in METHODS {
        let m = find_method(&doc["resources"], spec.id)
            .unwrap_or_else(|| panic!("{} is not in the discovery document", spec.id));
        assert_eq!(m["httpMethod"], spec.http_method, "{}", spec.id);
        assert_eq!(m["path"], spec.path, "{}", spec.id);
        assert_eq!(
            m["request"]["$ref"].as_str(),
            spec.request,
            "{} request",
            spec.id
        );
        assert_eq!(
            m["response"]["$ref"].as_str(),
            spec.response,
            "{} response",
            spec.id
        );
        for p in spec.params {
            let declared = &m["parameters"][*p];
            assert!(
                declared.is_object(),
                "{}: the emulator takes `{p}`, which the document doesn't name",
                spec.id
            );
            let in_path = spec.path.contains(&format!("{{{p}}}"));
            let location = if in_path { "path" } else { "query" };
            assert_eq!(declared["location"], location, "{}.{p}", spec.id);
        }
        for required in m["parameterOrder"].as_array().unwrap() {
            assert!(
                spec.params.contains(&required.as_str().unwrap()),
                "{}: the required {required} is not served",
                spec.id
            );
        }
        let ours: BTreeSet<&str> = spec.scopes.iter().copied().collect();
        let theirs: BTreeSet<&str> = m["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(ours, theirs, "{} scopes", spec.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_the_emulator_serves_is_in_the_discovery_schema() {
    let doc = discovery_document();
    let (mut errors, mut seen) = (Vec::new(), BTreeSet::new());
    let wrong = json!({"kind": "admin#directory#group", "suspended": "yes", "madeUp": 1, "name": {"fullName": 2}});
    check(
        &doc,
        &json!({"$ref": "User"}),
        &wrong,
        "wrong",
        &mut errors,
        &mut seen,
    );
    assert_eq!(
        errors.len(),
        4,
        "the checker itself catches mistakes: {errors:#?}"
    );
    let (g, key) = domain().await;
    g.set_custom_field(
        "dana@example.com",
        "Slipway",
        "githubLogin",
        Some("dana-ng"),
    );
    g.suspend_user("finn@example.com", true);
    g.add_everyone("oncall@example.com");
    let token = access_token(&g, &key).await;
    let rx = Receiver::start(200).await;
    let (mut errors, mut seen) = (Vec::new(), BTreeSet::new());
    let calls: Vec<(&str, &str, Option<Value>, &str)> = vec![
        (
            "GET",
            "admin/directory/v1/users?customer=my_customer&projection=full&maxResults=2",
            None,
            "Users",
        ),
        (
            "GET",
            "admin/directory/v1/users?domain=example.com&projection=custom&customFieldMask=Slipway",
            None,
            "Users",
        ),
        (
            "GET",
            "admin/directory/v1/users/finn@example.com",
            None,
            "User",
        ),
        (
            "GET",
            "admin/directory/v1/groups?customer=my_customer",
            None,
            "Groups",
        ),
        (
            "GET",
            "admin/directory/v1/groups/engineering@example.com/members?includeDerivedMembership=true",
            None,
            "Members",
        ),
        (
            "GET",
            "admin/directory/v1/groups/oncall@example.com/members?maxResults=1",
            None,
            "Members",
        ),
        (
            "POST",
            "admin/directory/v1/users/watch?customer=my_customer",
            Some(
                json!({"id": "c1", "type": "web_hook", "address": rx.url, "token": "t-0123456789abcdef"}),
            ),
            "Channel",
        ),
    ];
    for (method, path, body, schema) in calls {
        let (status, _, v) = call(&g, Some(&token), method, path, body).await;
        assert_eq!(status, 200, "{path}: {v}");
        check(
            &doc,
            &json!({"$ref": schema}),
            &v,
            path,
            &mut errors,
            &mut seen,
        );
    }
    g.suspend_user("dana@example.com", true);
    assert!(
        g.wait_until(Duration::from_secs(5), |g| g.deliveries().len() == 2)
            .await
    );
    let (_, body) = rx
        .seen()
        .into_iter()
        .find(|(h, _)| h["x-goog-resource-state"] == "update")
        .unwrap();
    let pushed: Value = serde_json::from_str(&body).unwrap();
    check(
        &doc,
        &json!({"$ref": "User"}),
        &pushed,
        "push",
        &mut errors,
        &mut seen,
    );
    assert!(errors.is_empty(), "{errors:#?}");
    for schema in [
        "User", "Users", "Group", "Groups", "Member", "Members", "Channel",
    ] {
        assert!(
            seen.contains(schema),
            "{schema} was never checked: {seen:?}"
        );
    }
}

/// The real client: `googleapiclient.discovery.build` from the packaged document, with
/// `google-auth`'s service account credentials (domain-wide delegation to the admin).
const CLIENT: &str = r#"
import json, sys
from google.oauth2 import service_account
from google.auth.exceptions import RefreshError
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

key, root, admin, address, stranger_pem, scopes = sys.argv[1:7]
key = json.loads(key)
scopes = scopes.split()

def service(info, scopes):
    creds = service_account.Credentials.from_service_account_info(info, scopes=scopes, subject=admin)
    return build("admin", "directory_v1", credentials=creds, static_discovery=True,
                 cache_discovery=False, client_options={"api_endpoint": root + "/"})

svc = service(key, scopes)
out = {"users": [], "pages": 0}
req = svc.users().list(customer="my_customer", maxResults=2, projection="full", orderBy="email")
while req is not None:
    resp = req.execute()
    out["pages"] += 1
    out["users"] += [u["primaryEmail"] for u in resp.get("users", [])]
    req = svc.users().list_next(req, resp)
out["dana"] = svc.users().get(userKey="dana@example.com", projection="full").execute()
out["groups"] = [g["name"] for g in svc.groups().list(customer="my_customer").execute()["groups"]]
members = svc.members().list(groupKey="engineering@example.com", includeDerivedMembership=True).execute()
out["members"] = [m["email"] for m in members["members"]]
channel = svc.users().watch(customer="my_customer", event="update",
                            body={"id": "py-chan", "type": "web_hook", "address": address, "token": "py-token-0123456789"}).execute()
out["channel"] = channel
svc.channels().stop(body={"id": channel["id"], "resourceId": channel["resourceId"]}).execute()

forged = dict(key, private_key=stranger_pem)
try:
    service(forged, scopes).users().list(customer="my_customer").execute()
    out["forged"] = "accepted"
except RefreshError as e:
    out["forged"] = str(e)
try:
    service(key, ["https://www.googleapis.com/auth/admin.directory.group.readonly"]).users().list(customer="my_customer").execute()
    out["narrow"] = "accepted"
except HttpError as e:
    out["narrow"] = e.resp.status
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn googles_python_client_reads_the_directory_through_the_emulator() {
    let _ = discovery_document();
    let (g, key) = domain().await;
    g.set_custom_field(
        "dana@example.com",
        "Slipway",
        "githubLogin",
        Some("dana-ng"),
    );
    let rx = Receiver::start(200).await;
    let stranger = g.add_service_account("stranger");
    let out = tokio::process::Command::new("python3")
        .args([
            "-c",
            CLIENT,
            &key.json,
            &g.base_url(),
            ADMIN,
            &rx.url,
            &stranger.private_key_pem,
            &SCOPES.join(" "),
        ])
        .output()
        .await
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the Python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["users"],
        json!([
            "admin@example.com",
            "dana@example.com",
            "eve@example.com",
            "finn@example.com"
        ])
    );
    assert_eq!(v["pages"], 2);
    assert_eq!(
        v["dana"]["customSchemas"]["Slipway"]["githubLogin"],
        "dana-ng"
    );
    assert_eq!(v["groups"], json!(["engineering", "oncall"]));
    assert_eq!(
        v["members"],
        json!(["dana@example.com", "oncall@example.com", "eve@example.com"])
    );
    assert_eq!(v["channel"]["id"], "py-chan");
    assert!(g.channels().is_empty(), "the client stopped its channel");
    let forged = v["forged"].as_str().unwrap();
    assert!(
        forged.contains("invalid_grant") && forged.contains("Invalid JWT Signature"),
        "{forged}"
    );
    assert_eq!(v["narrow"], 403);
    assert!(
        g.wait_until(Duration::from_secs(5), |_| !rx.seen().is_empty())
            .await,
        "the channel's sync message arrived"
    );
}
