//! Property tests of the parser's safety rules.

use proptest::prelude::*;

use super::parse::ParseErrorKind;
use super::{aws, gcloud, kubectl, parse_line};
use crate::tokenize::tokenize;

/// Characters a word may hold: ordinary ones and every shell metacharacter, but no quotes.
fn word() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::char::range('a', 'z'),
            1 => proptest::sample::select(vec![';', '|', '&', '<', '>', '`', '$', '(', ')', '-', '=', '/', '.', '*', '\\']),
        ],
        1..8,
    )
    .prop_map(|c| c.into_iter().collect())
}

/// JSON whose keys are few, so that paths meet them.
fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        "[a-c]{0,3}".prop_map(Value::from)
    ];
    leaf.prop_recursive(6, 64, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-c]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn has_operator(w: &str) -> bool {
    w.contains([';', '|', '&', '<', '>', '`']) || w.contains("$(")
}

proptest! {
    /// Quoted words come back exactly; an operator outside quotes is always an error, never an
    /// operator and never silently part of an argument.
    #[test]
    fn operators_never_leak_from_operator_positions(words in proptest::collection::vec((word(), any::<bool>()), 1..8)) {
        let text = words.iter().map(|(w, q)| if *q { format!("'{w}'") } else { w.clone() }).collect::<Vec<_>>().join(" ");
        let unquoted_op = words.iter().any(|(w, q)| !q && has_operator(w));
        match tokenize(&text) {
            Ok(tokens) => {
                prop_assert!(!unquoted_op, "{text:?} tokenized despite an unquoted operator");
                let expected: Vec<String> = words.iter().map(|(w, _)| w.clone()).collect();
                prop_assert_eq!(tokens, expected);
            }
            Err(_) => prop_assert!(unquoted_op, "{text:?} rejected without an unquoted operator"),
        }
    }

    /// Appending an operator and anything after a valid command always fails to parse.
    #[test]
    fn trailing_operator_is_refused(op in proptest::sample::select(vec![";", "|", "&&", "||", ">", ">>", "<", "`", "$(", "&"]), tail in "[a-z /-]{0,20}") {
        for base in ["/kubectl get pods -n web", "/aws staging-readonly ec2 describe-instances", "/gcloud gcp-staging compute zones list", "/tf plan network", "/deploy api staging"] {
            let text = format!("{base}{op}{tail}");
            prop_assert!(parse_line(&text).is_err(), "{text:?} parsed");
            let text = format!("{base} {op} {tail}");
            prop_assert!(parse_line(&text).is_err(), "{text:?} parsed");
        }
    }

    /// Any kubectl verb not on the allowlist is an error.
    #[test]
    fn unknown_kubectl_verbs_denied(verb in "[a-z][a-z-]{0,12}") {
        let known = kubectl::VERBS.iter().any(|v| v.words[0] == verb);
        prop_assume!(!known);
        let e = parse_line(&format!("/kubectl {verb} pods")).unwrap_err();
        prop_assert!(matches!(e.kind, ParseErrorKind::Unknown | ParseErrorKind::Refused), "{verb}: {e}");
    }

    /// Any kubectl flag not on the allowlist is an error, in every spelling.
    #[test]
    fn unknown_kubectl_flags_denied(flag in "[a-z][a-z-]{0,15}", value in "[a-z0-9]{1,5}") {
        let get = kubectl::VERBS.iter().find(|v| v.words == ["get"]).unwrap();
        prop_assume!(!get.flags.contains(&flag.as_str()));
        for text in [format!("/kubectl get pods --{flag}"), format!("/kubectl get pods --{flag}={value}"), format!("/kubectl get pods --{flag} {value}")] {
            let e = parse_line(&text).unwrap_err();
            prop_assert!(matches!(e.kind, ParseErrorKind::Unknown | ParseErrorKind::Refused), "{text}: {e}");
        }
    }

    /// Any AWS parameter or operation not on the allowlists is an error.
    #[test]
    fn unknown_aws_params_and_operations_denied(param in "[a-z][a-z-]{0,15}", op in "[a-z][a-z-]{0,20}") {
        if !aws::ALLOWED_PARAMS.contains(&param.as_str()) {
            let text = format!("/aws staging-readonly ec2 describe-instances --{param} x");
            prop_assert!(parse_line(&text).is_err(), "{text}");
        }
        if !aws::is_allowed("ec2", &op) {
            let text = format!("/aws staging-readonly ec2 {op}");
            prop_assert!(parse_line(&text).is_err(), "{text}");
        }
    }

    /// Any gcloud flag or command not on the allowlists is an error, in every spelling, and an
    /// allowed command's argv never carries a project but the one the bridge adds.
    #[test]
    fn unknown_gcloud_flags_and_commands_denied(flag in "[a-z][a-z-]{0,15}", value in "[a-z0-9]{1,5}", group in "[a-z][a-z-]{0,12}", verb in "[a-z][a-z-]{0,16}") {
        if !gcloud::FLAGS.iter().any(|f| f.name == flag) {
            for text in [format!("/gcloud gcp-staging compute zones list --{flag}"), format!("/gcloud gcp-staging compute zones list --{flag}={value}"), format!("/gcloud gcp-staging compute zones list --{flag} {value}")] {
                let e = parse_line(&text).unwrap_err();
                prop_assert!(matches!(e.kind, ParseErrorKind::Unknown | ParseErrorKind::Refused), "{text}: {e}");
            }
        }
        let known = gcloud::GROUPS.iter().any(|g| g.path == [group.as_str(), "instances"] && g.verbs.contains(&verb.as_str()));
        let text = format!("/gcloud gcp-staging {group} instances {verb}");
        match parse_line(&text) {
            Ok(p) => {
                prop_assert!(known, "{text} parsed");
                let argv = p.argv().unwrap_or_default();
                prop_assert!(!argv.iter().any(|a| a.starts_with("--project")), "{argv:?}");
            }
            Err(_) => prop_assert!(!known, "{text} refused"),
        }
    }

    /// Stripping never panics, whatever the JSON and the paths, and leaves nothing a second
    /// pass could still find.
    #[test]
    fn stripping_never_panics_and_leaves_nothing_behind(mut v in json(), path in "[a-c.\\[\\]]{0,12}") {
        let paths = [path.as_str(), "a.b", "a[].b.c", "c"];
        let _ = gcloud::strip_fields(&mut v, &paths);
        prop_assert_eq!(gcloud::strip_fields(&mut v, &paths), 0, "{}", v);
    }

    /// Arbitrary text never panics any parser.
    #[test]
    fn parsers_never_panic(text in "\\PC{0,200}") {
        for family in ["/kubectl", "/tf", "/aws", "/gcloud", "/deploy", "/silence", "/slipway", "/x"] {
            let _ = parse_line(&format!("{family} {text}"));
        }
    }
}
