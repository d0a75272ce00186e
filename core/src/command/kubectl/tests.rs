//! Tests for the kubectl parser: allowed and refused verbs, flags, values and Secret reads.

use super::*;
use crate::command::parse::ParseErrorKind;

fn words(s: &str) -> Vec<String> {
    crate::tokenize::tokenize(s).unwrap()
}
fn ok(s: &str) -> Kubectl {
    parse(words(s)).unwrap_or_else(|e| panic!("{s}: {e}"))
}
fn err(s: &str) -> ParseError {
    parse(words(s)).expect_err(s)
}

#[test]
fn read_verbs() {
    let k = ok("get pods -n web");
    assert_eq!(k.argv(), ["kubectl", "get", "pods", "--namespace=web"]);
    assert_eq!(k.tier, Tier::Read);
    assert_eq!(k.namespace, Namespace::Named("web".into()));
    assert_eq!(
        ok("@production get pods -A").cluster.as_deref(),
        Some("production")
    );
    assert_eq!(ok("get pods -A").namespace, Namespace::All);
    assert_eq!(ok("rollout status deployment/api -n web").tier, Tier::Read);
    assert_eq!(
        ok("logs api-1 -n web --tail=50 -c app").argv(),
        [
            "kubectl",
            "logs",
            "api-1",
            "--namespace=web",
            "--tail=50",
            "--container=app"
        ]
    );
    assert_eq!(ok("get pods -owide").flags, ["--output=wide"]);
    assert_eq!(
        ok("get pods -n=web").namespace,
        Namespace::Named("web".into())
    );
}

#[test]
fn change_and_destructive_verbs() {
    assert_eq!(
        ok("scale deploy/api --replicas=3 -n web").tier,
        Tier::Change
    );
    assert_eq!(ok("rollout restart deploy/api -n web").tier, Tier::Change);
    assert_eq!(
        ok("apply -f apps/api/staging/deploy.yaml").files,
        ["apps/api/staging/deploy.yaml"]
    );
    assert_eq!(ok("delete deploy/old -n web").tier, Tier::Destructive);
    assert_eq!(
        ok("drain node-1 --ignore-daemonsets").tier,
        Tier::Destructive
    );
    assert_eq!(
        ok("patch deploy/api -p '{\"spec\":{\"replicas\":2}}' -n web").flags[0],
        "--patch={\"spec\":{\"replicas\":2}}"
    );
}

#[test]
fn refused_verbs() {
    for v in [
        "exec -it api-1 -- sh",
        "cp a b",
        "port-forward svc/api 80",
        "proxy",
        "attach x",
        "debug node/x",
        "edit deploy/api",
        "run x --image=y",
        "auth whoami",
    ] {
        assert_eq!(err(v).kind, ParseErrorKind::Refused, "{v}");
    }
    assert_eq!(err("create ns x").kind, ParseErrorKind::Unknown);
    assert_eq!(err("rollout undo deploy/api").kind, ParseErrorKind::Unknown);
}

#[test]
fn identity_flags_refused() {
    for f in IDENTITY_FLAGS {
        let e = err(&format!("get pods --{f}=x"));
        assert_eq!(e.kind, ParseErrorKind::Refused, "{f}");
        let e = err(&format!("get pods --{f} x"));
        assert_eq!(e.kind, ParseErrorKind::Refused, "{f}");
    }
    assert_eq!(
        err("get pods -s https://evil").kind,
        ParseErrorKind::Refused
    );
}

#[test]
fn unknown_flags() {
    let e = err("get pods --frobnicate");
    assert_eq!(e.kind, ParseErrorKind::Unknown);
    assert!(e.message.contains("-n/--namespace"), "{e}");
    assert_eq!(err("get pods -w").kind, ParseErrorKind::Refused);
    assert_eq!(err("logs api -f").kind, ParseErrorKind::Refused);
    assert_eq!(err("get pods -- x").kind, ParseErrorKind::Unknown);
    // A flag valid for one verb is unknown on another.
    assert_eq!(err("get pods --replicas=3").kind, ParseErrorKind::Unknown);
}

#[test]
fn secrets_never_readable() {
    for s in [
        "get secret db -o yaml",
        "get secrets -o json -n prod",
        "get secret/db -ojsonpath={.data}",
        "get pods,secrets -o yaml",
        "get secrets.v1 db -o custom-columns=X:.data",
        "describe secret db",
        "describe secrets -n web",
    ] {
        assert_eq!(err(s).kind, ParseErrorKind::Refused, "{s}");
    }
    assert_eq!(ok("get secrets -n web").tier, Tier::Read);
    assert_eq!(ok("get configmap x -o yaml").tier, Tier::Read);
    assert!(names_secrets("Secrets"));
    assert!(!names_secrets("secretproviderclasses"));
}

#[test]
fn values_checked() {
    assert_eq!(err("get pods -n 'web; id'").kind, ParseErrorKind::Invalid);
    assert_eq!(err("get pods -n --token=x").kind, ParseErrorKind::Invalid);
    assert_eq!(
        err("get pods -o go-template={{.}}").kind,
        ParseErrorKind::Refused
    );
    assert_eq!(
        err("get pods -o jsonpath-file=/etc/passwd").kind,
        ParseErrorKind::Refused
    );
    for p in [
        "/etc/passwd",
        "../x.yaml",
        "a/../../b",
        "-",
        "https://x/y.yaml",
    ] {
        assert_eq!(
            err(&format!("apply -f {p}")).kind,
            ParseErrorKind::Refused,
            "{p}"
        );
    }
    assert_eq!(err("get pods -n web -A").kind, ParseErrorKind::Invalid);
    assert_eq!(err("@Prod get pods").kind, ParseErrorKind::Invalid);
    assert_eq!(err("get pods @prod").kind, ParseErrorKind::Invalid);
}

#[test]
fn shapes() {
    assert_eq!(err("get").kind, ParseErrorKind::Invalid);
    assert_eq!(err("scale deploy/api").kind, ParseErrorKind::Invalid);
    assert_eq!(err("apply").kind, ParseErrorKind::Invalid);
    assert_eq!(err("delete pods -l app=x").kind, ParseErrorKind::Refused);
    assert_eq!(err("").kind, ParseErrorKind::Invalid);
}

#[test]
fn every_verb_flag_is_defined() {
    for verb in VERBS {
        for f in verb.flags {
            assert!(
                FLAGS.iter().any(|s| s.long == *f),
                "{} lists undefined flag {f}",
                verb.name()
            );
        }
    }
}

#[test]
fn the_namespace_is_always_explicit_in_the_argv() {
    assert_eq!(
        ok("get pods").argv(),
        ["kubectl", "get", "pods", "--namespace=default"]
    );
    assert!(
        !ok("get pods -A")
            .argv()
            .iter()
            .any(|a| a.starts_with("--namespace"))
    );
}

#[test]
fn cluster_scoped_kinds_are_not_a_namespace() {
    let s = KindScopes::builtin();
    let scope = |line: &str| ok(line).target_namespace(s);
    assert_eq!(
        scope("delete namespace prod"),
        Namespace::Named("prod".into()),
        "a namespace object is authorised as the namespace it names"
    );
    assert_eq!(scope("delete ns/prod"), Namespace::Named("prod".into()));
    assert_eq!(
        scope("label ns prod team=web"),
        Namespace::Named("prod".into())
    );
    for line in [
        "patch clusterrolebinding admin -p {}",
        "get nodes",
        "cordon node-1",
        "get namespaces",
        "delete ns a b",
        "get pods,nodes -n web",
        "delete clusterrole/x deployment/y -n web",
        "get widgets.example.com -n web",
        "get crd",
    ] {
        assert_eq!(scope(line), Namespace::ClusterScoped, "{line}");
    }
    assert_eq!(scope("get pods -n web"), Namespace::Named("web".into()));
    assert_eq!(scope("logs api-1"), Namespace::Default);
    assert_eq!(scope("get all -A"), Namespace::All);
    let discovered = KindScopes::with_discovered([DiscoveredKind {
        name: "widgets".into(),
        short_names: vec![],
        api_version: "example.com/v1".into(),
        namespaced: true,
        kind: "Widget".into(),
    }]);
    assert_eq!(
        ok("get widgets.example.com -n web").target_namespace(&discovered),
        Namespace::Named("web".into()),
        "a namespaced custom resource, as discovery declares it"
    );
}
