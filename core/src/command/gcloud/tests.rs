use super::*;
use crate::command::ParseErrorKind;

fn p(s: &str) -> Result<Gcloud, ParseError> {
    parse(crate::tokenize::tokenize(s).unwrap())
}

fn refused(s: &str) -> String {
    let e = p(s).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::Refused, "{s}: {e}");
    e.message
}

#[test]
fn allowed_reads_and_their_argv() {
    let g = p("gcp-staging compute disks list --zone us-central1-a --limit=5 --format=\"table(name, sizeGb)\"").unwrap();
    assert_eq!(g.alias, "gcp-staging");
    assert_eq!(g.path, ["compute", "disks", "list"]);
    assert!(g.strip.is_empty());
    assert_eq!(
        g.argv(),
        [
            "gcloud",
            "compute",
            "disks",
            "list",
            "--zone=us-central1-a",
            "--limit=5",
            "--format=table(name, sizeGb)"
        ]
    );
    assert_eq!(
        g.argv_in("acme-staging-1").unwrap().last().unwrap(),
        "--project=acme-staging-1"
    );
    // Flags may come first; the longest group wins.
    let g = p(
        "gcp-prod --verbosity=error compute networks subnets list --regions=us-east1,europe-west1",
    )
    .unwrap();
    assert_eq!(g.path, ["compute", "networks", "subnets", "list"]);
    for s in [
        "x container operations list --location=us-central1",
        "x iam service-accounts describe ci@acme-staging-1.iam.gserviceaccount.com",
        "x iam roles describe roles/viewer",
        "x storage buckets describe gs://acme-logs",
        "x logging read \"severity>=ERROR AND resource.type=k8s_container\" --limit=20 --freshness=2h --order=asc",
        "x logging logs list",
        "x secrets versions list db-password",
        "x kms keys get-iam-policy k1 --keyring=ring --location=global",
        "x compute disks list --filter=\"zone:us-east1-b AND NOT (status=TERMINATED)\"",
        "x compute addresses list --global --uri",
        "x services list",
        "x dns record-sets list --zone=public --name=www.example.com. --type=A",
    ] {
        p(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

#[test]
fn projects_commands_get_the_aliases_project_as_their_positional() {
    let g = p("gcp-prod projects get-iam-policy --format=json").unwrap();
    assert_eq!(
        g.argv(),
        ["gcloud", "projects", "get-iam-policy", "--format=json"]
    );
    assert_eq!(
        g.argv_in("acme-prod-1").unwrap(),
        [
            "gcloud",
            "projects",
            "get-iam-policy",
            "acme-prod-1",
            "--format=json",
            "--project=acme-prod-1"
        ]
    );
}

#[test]
fn credential_printing_commands_are_refused_whatever_follows() {
    for s in [
        "x auth print-access-token",
        "x auth print-identity-token --audiences=https://api",
        "x auth application-default print-access-token",
        "x auth list",
        "x container clusters get-credentials prod --region us-east1",
        "x secrets versions access latest --secret=db-password",
        "x kms decrypt --ciphertext-file=- --plaintext-file=- --key=k",
        "x kms asymmetric-decrypt --key=k",
        "x iam service-accounts keys create key.json --iam-account=a@b.iam.gserviceaccount.com",
        "x iam service-accounts sign-blob in out --iam-account=a@b.iam.gserviceaccount.com",
        "x iam service-accounts sign-jwt in out",
        "x sql generate-login-token",
        "x redis instances get-auth-string cache --region=us-east1",
        "x compute reset-windows-password vm",
        "x config list",
        "x config set project other",
        "x meta list-files-for-upload",
        "x components install kubectl",
        "x alpha compute instances list",
    ] {
        refused(s);
    }
    assert!(refused("x auth print-access-token").contains("prints credentials"));
    assert!(refused("x config get-value account").contains("configuration"));
}

#[test]
fn data_reads_and_interactive_sessions_are_refused() {
    for s in [
        "x storage cat gs://bucket/backup.sql",
        "x compute instances get-serial-port-output vm --zone=z",
        "x compute ssh vm --zone z --command id",
        "x compute scp a vm:b",
        "x compute start-iap-tunnel vm 22",
        "x compute connect-to-serial-port vm",
        "x cloud-shell ssh",
        "x interactive",
        "x sql connect db --user=root",
    ] {
        refused(s);
    }
}

#[test]
fn refused_flags_are_refused_in_every_spelling() {
    for flag in REFUSED_FLAGS.iter().map(|(n, _)| *n) {
        for s in [
            format!("x compute instances list --{flag}=v"),
            format!("x compute instances list --{flag} v"),
            format!("x compute instances list --{flag}"),
            format!("x --{flag}=v compute instances list"),
            format!("x compute zones list --{flag}=v --limit=1"),
        ] {
            let m = refused(&s);
            assert!(m.contains(&format!("--{flag}")), "{s}: {m}");
        }
    }
    for s in [
        "x compute zones list --verbosity=debug",
        "x compute zones list --verbosity debug",
    ] {
        assert!(refused(s).contains("credentials"), "{s}");
    }
    for s in [
        "x compute zones list --verbosity=DEBUG",
        "x compute zones list --proj=other",
        "x compute zones list --impersonate=sa",
        "x compute zones list -q",
        "x compute zones list --",
        "x compute zones list -- --project=other",
    ] {
        let e = p(s).unwrap_err();
        assert!(
            matches!(e.kind, ParseErrorKind::Unknown | ParseErrorKind::Invalid),
            "{s}: {e}"
        );
    }
}

#[test]
fn no_allowed_flag_is_a_prefix_of_a_refused_one() {
    // Should gcloud ever expand unambiguous prefixes, no allowed name could become a refused flag.
    for f in FLAGS {
        for (refused, _) in REFUSED_FLAGS {
            assert!(!refused.starts_with(f.name), "--{} → --{refused}", f.name);
        }
    }
}

#[test]
fn transforms_hidden_in_format_or_filter_are_refused() {
    for s in [
        "x compute disks list --format=value(name.encode(base64))",
        "x compute disks list --format \"table(name, zone.basename())\"",
        "x compute disks list --format=json(name)",
        "x compute disks list --format=csv(name)",
        "x compute disks list --format=\"value[separator=' '](name)\"",
        "x compute disks list --filter=\"name.decode(base64):x\"",
        "x compute disks list --filter \"labels.key.encode(base64)=abc\"",
        "x compute disks list --filter=\"name.decode (base64):x\"",
        "x compute disks list --sort-by=name.basename()",
        "x compute disks list --flatten=users.decode()",
        "x logging sinks list --format=value(writerIdentity.split(':'))",
    ] {
        refused(s);
    }
}

#[test]
fn mutating_verbs_point_to_tf_apply() {
    for s in [
        "x compute instances delete web-1 --zone=z --delete-disks=all",
        "x compute instances stop web-1",
        "x compute instances set-metadata web-1 --metadata=startup-script=x",
        "x compute instances add-metadata web-1",
        "x container clusters resize prod --num-nodes=0",
        "x projects add-iam-policy-binding --member=user:a --role=roles/owner",
        "x run services update api --update-env-vars=A=1",
        "x run deploy api",
        "x sql instances patch db",
        "x logging write log msg",
        "x iam service-accounts keys delete k",
    ] {
        let e = p(s).unwrap_err();
        if e.kind == ParseErrorKind::Refused {
            assert!(e.message.contains("/tf apply"), "{s}: {e}");
        } else {
            // `run deploy` has no allowlisted group of its own.
            assert_eq!(e.kind, ParseErrorKind::Unknown, "{s}: {e}");
        }
    }
    assert!(refused("x compute instances delete vm").contains("only reads"));
}

#[test]
fn the_project_is_never_the_users() {
    for s in [
        "x compute instances list --project=other",
        "x compute instances list --project other",
        "x --project=other compute instances list",
        "x projects describe other-project",
        "x compute disks describe projects/other/zones/z/disks/d",
        "x compute disks describe https://www.googleapis.com/compute/v1/projects/other/zones/z/disks/d",
        "x container node-pools list --cluster=projects/other/locations/l/clusters/c",
        "x storage buckets describe gs://b/../x",
    ] {
        let e = p(s).unwrap_err();
        assert!(
            matches!(e.kind, ParseErrorKind::Refused | ParseErrorKind::Invalid),
            "{s}: {e}"
        );
    }
    let g = p("x iam service-accounts get-iam-policy ci@other-project.iam.gserviceaccount.com")
        .unwrap();
    let e = g.argv_in("acme-prod-1").unwrap_err();
    assert!(e.contains("another project"), "{e}");
    let g = p(
        "x iam service-accounts keys list --iam-account=ci@other-project.iam.gserviceaccount.com",
    )
    .unwrap();
    assert!(g.argv_in("acme-prod-1").is_err());
    let g =
        p("x iam service-accounts keys list --iam-account=ci@acme-prod-1.iam.gserviceaccount.com")
            .unwrap();
    let argv = g.argv_in("acme-prod-1").unwrap();
    assert_eq!(
        argv.iter().filter(|a| a.starts_with("--project")).count(),
        1
    );
}

#[test]
fn secret_bearing_describes_are_stripped_and_forced_to_json() {
    for (s, path) in [
        (
            "x compute instances describe web-1 --zone=us-east1-b",
            "metadata.items",
        ),
        ("x compute instances list", "metadata.items"),
        ("x compute instance-templates describe t1", "metadata.items"),
        (
            "x compute project-info describe",
            "commonInstanceMetadata.items",
        ),
        (
            "x functions describe fn --region=us-east1",
            "environmentVariables",
        ),
        ("x functions list", "serviceConfig.environmentVariables"),
        (
            "x run services describe api --region=us-east1",
            "containers[].env",
        ),
        ("x run revisions describe api-00001", "containers[].env"),
        ("x run jobs describe nightly", "containers[].env"),
        (
            "x container clusters describe prod --region=us-east1",
            "masterAuth.clientKey",
        ),
    ] {
        let g = p(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert!(g.strip.contains(&path), "{s}: {:?}", g.strip);
        let argv = g.argv();
        assert_eq!(argv.last().unwrap(), "--format=json", "{s}");
        assert_eq!(
            argv.iter().filter(|a| a.starts_with("--format")).count(),
            1,
            "{s}"
        );
    }
    // Their output is not the person's to shape: a filter could test a stripped value.
    for s in [
        "x compute instances describe web-1 --format=yaml",
        "x compute instances list --format=value(metadata.items)",
        "x compute instances list --filter=\"metadata.items.value:sk_live*\"",
        "x compute instances list --sort-by=metadata.items[0].value",
        "x compute instances list --flatten=metadata.items",
        "x compute instances list --uri",
        "x run services list --format=json",
    ] {
        assert!(refused(s).contains("removes"), "{s}");
    }
}

#[test]
fn unknown_commands_list_what_is_allowed() {
    let e = p("x frobnicate things list").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::Unknown);
    assert!(e.message.contains("compute instances"), "{e}");
    let e = p("x compute instances frob").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::Unknown);
    assert!(e.message.contains("list|describe|get-iam-policy"), "{e}");
    let e = p("x logging tail").unwrap_err();
    assert!(
        e.message.contains("`read`") && e.message.contains("`sinks list|describe`"),
        "{e}"
    );
    for s in [
        "",
        "x",
        "x compute instances",
        "-x compute zones list",
        "Prod compute zones list",
    ] {
        let e = parse(crate::tokenize::tokenize(s).unwrap()).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Invalid, "{s}: {e}");
    }
    for s in [
        "x compute zones list --limit=ten",
        "x compute zones list --uri=yes",
        "x compute zones list --format",
        "x logging read a b",
        "x logging read q --freshness=1week",
        "x compute zones list --order=sideways",
    ] {
        assert_eq!(p(s).unwrap_err().kind, ParseErrorKind::Invalid, "{s}");
    }
}

#[test]
fn every_group_is_reachable_and_no_refusal_hides_behind_the_allowlist() {
    for g in GROUPS {
        for verb in g.verbs {
            let text = format!("x {} {verb}", g.name());
            let parsed = p(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.path.join(" "), format!("{} {verb}", g.name()));
            assert!(!MUTATING_VERBS.contains(verb), "{text}");
        }
    }
    for (path, _) in REFUSED_COMMANDS {
        assert!(p(&format!("x {}", path.join(" "))).is_err());
    }
}
