//! The Google emulator's protocol: the token endpoint's checks and refusals, bearer tokens and
//! scopes on every Directory API call, pagination, derived membership, and push channels.
#![allow(clippy::unwrap_used)]
// Protocol scenario tests read top to bottom; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

mod google_support;

use std::time::Duration;

use google_support::{
    ADMIN, GROUP_RO, Receiver, SCOPES, access_token, assertion, call, claims, domain, exchange,
};
use serde_json::json;

#[tokio::test]
async fn the_token_endpoint_checks_key_audience_time_scope_and_subject() {
    let (g, key) = domain().await;
    let (status, body) = exchange(&g, &assertion(&key, &claims(&g, &key, ADMIN, &SCOPES))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().unwrap() > 3000);

    // Signed by another key (same account name, another project's key).
    let stranger = g.add_service_account("impostor");
    let mut forged = claims(&g, &key, ADMIN, &SCOPES);
    forged["iss"] = json!(key.client_email);
    let (status, body) = exchange(&g, &assertion(&stranger, &forged)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(body["error_description"], "Invalid JWT Signature.");

    let now = chrono::Utc::now().timestamp();
    let mut expired = claims(&g, &key, ADMIN, &SCOPES);
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    let mut too_long = claims(&g, &key, ADMIN, &SCOPES);
    too_long["exp"] = json!(now + 7200);
    let mut wrong_aud = claims(&g, &key, ADMIN, &SCOPES);
    wrong_aud["aud"] = json!(g.token_url());
    let ghost = claims(&g, &key, "ghost@example.com", &SCOPES);
    for (what, c) in [
        ("expired", expired),
        ("longer than an hour", too_long),
        ("another audience", wrong_aud),
        ("an unknown subject", ghost),
    ] {
        let (status, body) = exchange(&g, &assertion(&key, &c)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{what}: {body}"
        );
    }
    let write_scope = ["https://www.googleapis.com/auth/admin.directory.user"];
    let (status, body) =
        exchange(&g, &assertion(&key, &claims(&g, &key, ADMIN, &write_scope))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized_client")),
        "a scope the admin didn't delegate: {body}"
    );
    let resp = reqwest::Client::new()
        .post(g.token_url())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn directory_calls_need_a_live_token_with_the_methods_scope_acting_for_an_admin() {
    let (g, key) = domain().await;
    let users = "admin/directory/v1/users?customer=my_customer";
    let (status, headers, body) = call(&g, None, "GET", users, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let (status, _, _) = call(&g, Some("ya29.made-up"), "GET", users, None).await;
    assert_eq!(status, 401);

    // A token for groups only can't list users.
    let jwt = assertion(&key, &claims(&g, &key, ADMIN, &[GROUP_RO]));
    let groups_only = exchange(&g, &jwt).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, body) = call(&g, Some(&groups_only), "GET", users, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["errors"][0]["reason"],
        "insufficientPermissions"
    );

    // Acting as someone who isn't an admin reads nothing.
    let jwt = assertion(&key, &claims(&g, &key, "dana@example.com", &SCOPES));
    let as_dana = exchange(&g, &jwt).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, body) = call(&g, Some(&as_dana), "GET", users, None).await;
    assert_eq!(status, 403, "{body}");

    // Expired tokens stop working.
    g.set_token_ttl(0);
    let stale = access_token(&g, &key).await;
    let (status, _, _) = call(&g, Some(&stale), "GET", users, None).await;
    assert_eq!(status, 401);

    g.set_token_ttl(3599);
    let token = access_token(&g, &key).await;
    let (status, _, body) = call(&g, Some(&token), "GET", users, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = call(
        &g,
        Some(&token),
        "GET",
        "admin/directory/v1/users?customer=C0other",
        None,
    )
    .await;
    assert_eq!(status, 403, "another customer");
    let (status, _, body) = call(
        &g,
        Some(&token),
        "GET",
        "admin/directory/v1/users?customer=my_customer&query=isSuspended%3Dtrue",
        None,
    )
    .await;
    assert_eq!(status, 400, "unimplemented parameters are refused: {body}");
}

#[tokio::test]
async fn lists_page_with_tokens_and_members_can_be_derived() {
    let (g, key) = domain().await;
    let token = access_token(&g, &key).await;
    let mut emails = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &next {
            Some(t) => {
                format!("admin/directory/v1/users?domain=example.com&maxResults=3&pageToken={t}")
            }
            None => "admin/directory/v1/users?domain=example.com&maxResults=3".to_string(),
        };
        let (status, _, body) = call(&g, Some(&token), "GET", &path, None).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        for u in body["users"].as_array().unwrap() {
            emails.push(u["primaryEmail"].as_str().unwrap().to_string());
        }
        match body["nextPageToken"].as_str() {
            Some(t) => next = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(
        emails,
        [
            "admin@example.com",
            "dana@example.com",
            "eve@example.com",
            "finn@example.com"
        ]
    );
    let (status, _, _) = call(
        &g,
        Some(&token),
        "GET",
        "admin/directory/v1/users?customer=my_customer&maxResults=501",
        None,
    )
    .await;
    assert_eq!(status, 400);

    let members = |derived: bool| {
        let token = token.clone();
        let g = g.clone();
        async move {
            let path = format!(
                "admin/directory/v1/groups/engineering@example.com/members?includeDerivedMembership={derived}"
            );
            let (status, _, body) = call(&g, Some(&token), "GET", &path, None).await;
            assert_eq!(status, 200, "{body}");
            body["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    format!(
                        "{}:{}",
                        m["type"].as_str().unwrap(),
                        m["email"].as_str().unwrap()
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        members(false).await,
        ["USER:dana@example.com", "GROUP:oncall@example.com"]
    );
    assert_eq!(
        members(true).await,
        [
            "USER:dana@example.com",
            "GROUP:oncall@example.com",
            "USER:eve@example.com"
        ]
    );
    let (status, _, body) = call(
        &g,
        Some(&token),
        "GET",
        "admin/directory/v1/groups/nope@example.com/members",
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = call(
        &g,
        Some(&token),
        "GET",
        "admin/directory/v1/users/eve@example.com",
        None,
    )
    .await;
    assert_eq!(
        (status, body["name"]["fullName"].as_str()),
        (200, Some("Eve Ito"))
    );
}

#[tokio::test]
async fn a_watch_channel_gets_sync_then_each_change_with_googles_headers_until_stopped() {
    let (g, key) = domain().await;
    let token = access_token(&g, &key).await;
    let rx = Receiver::start(200).await;
    let expiration = (chrono::Utc::now().timestamp_millis() + 60_000).to_string();
    let (status, _, channel) = call(
        &g,
        Some(&token),
        "POST",
        "admin/directory/v1/users/watch?customer=my_customer&event=update",
        Some(
            json!({"id": "chan-1", "type": "web_hook", "address": rx.url,
                    "token": "channel-token-0123456789", "expiration": expiration}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{channel}");
    assert_eq!(channel["kind"], "api#channel");
    assert_eq!(channel["expiration"], expiration);
    assert!(
        g.wait_until(Duration::from_secs(5), |g| g.deliveries().len() == 1)
            .await
    );
    g.add_user("gus@example.com", "Gus", "Lee"); // an `add`: not watched
    g.suspend_user("dana@example.com", true);
    assert!(
        g.wait_until(Duration::from_secs(5), |g| g.deliveries().len() == 2)
            .await
    );
    let seen = rx.seen();
    let header = |i: usize, name: &str| seen[i].0[name].to_str().unwrap().to_string();
    assert_eq!(header(0, "x-goog-resource-state"), "sync");
    assert_eq!(header(0, "x-goog-message-number"), "1");
    assert_eq!(header(1, "x-goog-resource-state"), "update");
    assert_eq!(header(1, "x-goog-message-number"), "2");
    assert_eq!(header(1, "x-goog-channel-id"), "chan-1");
    assert_eq!(
        header(1, "x-goog-channel-token"),
        "channel-token-0123456789"
    );
    assert_eq!(
        header(1, "x-goog-resource-id"),
        channel["resourceId"].as_str().unwrap()
    );
    assert!(header(1, "x-goog-channel-expiration").ends_with("GMT"));
    let body: serde_json::Value = serde_json::from_str(&seen[1].1).unwrap();
    assert_eq!(body["primaryEmail"], "dana@example.com");

    let (status, _, _) = call(
        &g,
        Some(&token),
        "POST",
        "admin/directory_v1/channels/stop",
        Some(json!({"id": "chan-1", "resourceId": channel["resourceId"]})),
    )
    .await;
    assert_eq!(status, 204);
    assert!(g.channels().is_empty());
    g.suspend_user("eve@example.com", true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.seen().len(), 2, "a stopped channel hears nothing");

    // A channel lives at most as long as the emulator allows.
    g.set_channel_ttl(Duration::from_millis(300));
    let (status, _, short) = call(
        &g,
        Some(&token),
        "POST",
        "admin/directory/v1/users/watch?customer=my_customer",
        Some(json!({"id": "chan-2", "type": "web_hook", "address": rx.url})),
    )
    .await;
    assert_eq!(status, 200, "{short}");
    let expires: i64 = short["expiration"].as_str().unwrap().parse().unwrap();
    assert!(expires <= chrono::Utc::now().timestamp_millis() + 300);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(g.channels().is_empty());
    let (status, _, body) = call(
        &g,
        Some(&token),
        "POST",
        "admin/directory/v1/users/watch?customer=my_customer",
        Some(json!({"id": "chan-3", "type": "web_hook", "address": "http://example.com/x"})),
    )
    .await;
    assert_eq!(status, 400, "plain http to a remote host: {body}");
}
