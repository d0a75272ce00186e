//! Generated docs in the repo must equal a fresh generation.

use slipway_tests::repo_root;

#[test]
fn generated_docs_are_up_to_date() {
    let root = repo_root();
    for (rel, fresh) in slipway_bridge::docs::generate(&root).expect("generates") {
        let committed = std::fs::read_to_string(root.join(&rel)).unwrap_or_default();
        assert!(
            committed == fresh,
            "{rel} is out of date: run `cargo run -p slipway-bridge -- docs`"
        );
    }
}

#[test]
fn docs_check_command_agrees() {
    let out = crate::slipway(&["docs", "--check"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
}

#[test]
fn the_terraform_module_is_formatted_and_pins_the_workflow() {
    slipway_tests::harness::require_terraform();
    let dir = repo_root().join("deploy/terraform");
    let out = std::process::Command::new("terraform")
        .args(["fmt", "-check", "-recursive", "."])
        .current_dir(&dir)
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "terraform fmt: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let main = std::fs::read_to_string(dir.join("main.tf")).unwrap();
    assert!(
        main.contains("token.actions.githubusercontent.com:aud")
            && main.contains(":job_workflow_ref:"),
        "the trust policy pins aud, sub and the workflow"
    );
    assert!(
        main.contains("var.runner_workflow_ref") && !main.contains("@refs/heads/"),
        "the workflow is pinned at a commit or tag, never a branch"
    );
    assert!(
        main.contains("object_lock_enabled = true") && main.contains("COMPLIANCE")
            || main.contains("audit_retention_mode")
    );
    // Google Cloud: the federation pins the same repository, branch and pinned workflow.
    let gcp = std::fs::read_to_string(dir.join("gcp/main.tf")).unwrap();
    assert!(
        gcp.contains("attribute_condition")
            && gcp.contains(
                "assertion.job_workflow_ref == '${var.runner_workflow}@${var.runner_workflow_ref}'"
            )
            && gcp.contains("refs/heads/${var.default_branch}")
            && gcp.contains("roles/iam.serviceAccountTokenCreator"),
        "the pool's provider pins repository, branch and workflow; the bridge only mints read tokens"
    );
}

/// Every test the threat model names exists, so the document can't point at a renamed or moved
/// test. Names are `module::function` in this binary, or `slipway-<crate> path::function`.
#[test]
fn the_threat_model_names_tests_that_exist() {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("docs/threat-model.md")).unwrap();
    let spans: Vec<&str> = text.split('`').skip(1).step_by(2).collect();
    let mut checked = 0;
    for span in spans {
        if span.starts_with("tests/") {
            assert!(
                root.join(span).exists(),
                "docs/threat-model.md names {span}, which is gone"
            );
            continue;
        }
        let (krate, path) = match span.split_once(' ') {
            Some((k, p)) if k.starts_with("slipway-") => (Some(k), p),
            Some(_) => continue,
            None => (None, span),
        };
        let segments: Vec<&str> = path.split("::").collect();
        let is_path = segments.len() >= 2
            && segments.iter().all(|s| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            });
        if !is_path || path == "module::function" {
            continue;
        }
        let (name, modules) = segments.split_last().unwrap();
        let base = match krate {
            Some(k) => root.join(k.trim_start_matches("slipway-")).join("src"),
            None => root.join("tests/it"),
        };
        let mut dir = base.clone();
        for m in modules {
            dir.push(m);
        }
        // A module is `<dir>.rs` or `<dir>/mod.rs`; its tests may sit in `<dir>/tests.rs`.
        let files = [
            dir.with_extension("rs"),
            dir.join("mod.rs"),
            dir.join("tests.rs"),
            dir.parent().unwrap().join("tests.rs"),
            dir.parent().unwrap().with_extension("rs"),
            dir.parent().unwrap().join("mod.rs"),
        ];
        let found = files.iter().any(|f| {
            std::fs::read_to_string(f).is_ok_and(|src| {
                if *name == "tests" {
                    f.ends_with("tests.rs") || src.contains("mod tests")
                } else {
                    src.contains(&format!("fn {name}("))
                }
            })
        });
        assert!(
            found,
            "docs/threat-model.md names `{span}`, which is not in {}",
            dir.display()
        );
        checked += 1;
    }
    assert!(
        checked >= 20,
        "only {checked} test names were found: is the format the same?"
    );
}

/// Both Slack app manifests register every command family, so a new one can't be left out.
#[test]
fn the_slack_manifests_register_every_family() {
    let root = repo_root();
    for manifest in SLACK_MANIFESTS {
        let text = std::fs::read_to_string(root.join(manifest)).unwrap();
        for family in slipway_core::command::Family::ALL {
            assert!(
                text.contains(&format!("- command: {}\n", family.slash())),
                "{manifest} lacks {}",
                family.slash()
            );
        }
    }
}

const SLACK_MANIFESTS: [&str; 2] = [
    "deploy/slack-app-manifest.yaml",
    "deploy/slack-app-manifest.socket-mode.yaml",
];

/// Both manifests read as Slack app manifests (slack-morphism's types: a shortcut's `type`, the
/// URLs, the required fields) and declare the App Home, the three shortcuts with their callback
/// ids, the events and the bot scopes Slipway uses; HTTP's URLs are the bridge's routes on one
/// https host, and Socket Mode's manifest names no URL at all.
#[test]
fn the_slack_manifests_declare_the_home_tab_shortcuts_events_and_scopes() {
    use slack_morphism::prelude::{SlackAppManifest, SlackShortcutType};
    let root = repo_root();
    for (manifest, socket_mode) in SLACK_MANIFESTS.into_iter().zip([false, true]) {
        let text = std::fs::read_to_string(root.join(manifest)).unwrap();
        let app: SlackAppManifest = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{manifest} is not a Slack app manifest: {e}"));
        let features = app.features.as_ref().expect("features");
        let home = features.app_home.as_ref().expect("features.app_home");
        assert_eq!(home.home_tab_enabled, Some(true), "{manifest}");
        // Approvers get DMs: the Messages tab is on, read-only (commands are never DMs).
        assert_eq!(home.messages_tab_enabled, Some(true), "{manifest}");
        assert_eq!(
            home.messages_tab_read_only_enabled,
            Some(true),
            "{manifest}"
        );

        let shortcuts: Vec<(String, String, bool)> = features
            .shortcuts
            .as_ref()
            .expect("features.shortcuts")
            .iter()
            .map(|s| {
                // Conservative bounds, not Slack's documented ones (the shared protocol notes
                // give none): short enough for the menus they appear in.
                assert!(
                    s.name.chars().count() <= 24,
                    "{manifest}: {} is long",
                    s.name
                );
                assert!(
                    (1..=80).contains(&s.description.chars().count()),
                    "{manifest}: {}'s description",
                    s.name
                );
                (
                    s.callback_id.0.clone(),
                    s.name.clone(),
                    s.ty == SlackShortcutType::Global,
                )
            })
            .collect();
        assert_eq!(
            shortcuts,
            [
                ("slipway_explain", "Explain with Slipway", false),
                ("slipway_run_again", "Run again", false),
                ("slipway_change", "Open a change request…", true),
            ]
            .map(|(id, name, global)| (id.to_string(), name.to_string(), global)),
            "{manifest}"
        );

        let settings = app.settings.as_ref().expect("settings");
        assert_eq!(
            settings.socket_mode_enabled,
            Some(socket_mode),
            "{manifest}"
        );
        let subscriptions = settings.event_subscriptions.as_ref().expect("events");
        let events: Vec<&str> = subscriptions
            .bot_events
            .iter()
            .flatten()
            .map(|e| e.0.as_str())
            .collect();
        for needed in ["app_mention", "app_home_opened", "user_change"] {
            assert!(events.contains(&needed), "{manifest}: {needed}");
        }
        let scopes: Vec<&str> = app
            .oauth_config
            .as_ref()
            .and_then(|o| o.scopes.as_ref())
            .and_then(|s| s.bot.as_ref())
            .expect("bot scopes")
            .iter()
            .map(|s| s.0.as_str())
            .collect();
        for needed in [
            "app_mentions:read",
            "commands",
            "chat:write",
            "chat:write.public",
            "im:write",
            "users:read",
            "users:read.email",
            "channels:read",
            "groups:read",
        ] {
            assert!(scopes.contains(&needed), "{manifest}: {needed}");
        }
        let interactivity = settings.interactivity.as_ref().expect("interactivity");
        assert!(interactivity.is_enabled, "{manifest}: shortcuts need it");

        let mut urls: Vec<String> = features
            .slash_commands
            .iter()
            .flatten()
            .filter_map(|c| c.url.as_ref().map(ToString::to_string))
            .collect();
        urls.extend(interactivity.request_url.as_ref().map(ToString::to_string));
        urls.extend(subscriptions.request_url.as_ref().map(ToString::to_string));
        if socket_mode {
            assert!(urls.is_empty(), "{manifest} names {urls:?}");
        } else {
            urls.sort();
            urls.dedup();
            assert_eq!(
                urls,
                ["commands", "events", "interactivity"]
                    .map(|p| format!("https://slipway.example.com/slack/{p}")),
                "{manifest}"
            );
        }
    }
}
