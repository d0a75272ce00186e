//! The AWS CLI's `--query`: a JMESPath expression, allowed only to select and filter fields.
//!
//! Functions are refused. `reverse(…)`, `join`, `to_string`, `sort`… rebuild values, so output
//! leaves the CLI in a shape the redactor can't recognise (a reversed access key matches no
//! prefix rule). The expression is parsed with a real JMESPath parser and the tree is checked,
//! so spacing, quoting or nesting can't hide a call.

use jmespath::ast::Ast;

use super::parse::{ParseError, truncate};

/// Longest expression accepted. Real queries are far shorter.
pub const MAX_QUERY_LEN: usize = 512;

/// Most nesting characters (`(`, `[`, `{`, `!`, `*`) accepted. The parser recurses once per
/// level, several kilobytes deep each, so a long run of `(` would overflow the stack and abort
/// the bridge. Counting every such character, even inside quotes, bounds the depth from above.
pub const MAX_NESTING: usize = 32;

/// Check one `--query` expression.
pub fn check(expr: &str) -> Result<(), ParseError> {
    if expr.len() > MAX_QUERY_LEN {
        return Err(ParseError::refused(format!(
            "`--query` is {} characters long; Slipway accepts up to {MAX_QUERY_LEN}. \
             Select fewer fields, or filter with `--filters`.",
            expr.len()
        )));
    }
    let nesting = expr
        .chars()
        .filter(|c| matches!(c, '(' | '[' | '{' | '!' | '*'))
        .count();
    if nesting > MAX_NESTING {
        return Err(ParseError::refused(format!(
            "`--query` has {nesting} brackets, stars and negations; Slipway accepts up to \
             {MAX_NESTING}. Select fewer fields in one query."
        )));
    }
    let ast = jmespath::parse(expr).map_err(|e| {
        ParseError::invalid(format!(
            "`--query {}` is not a JMESPath expression ({} at character {}).",
            truncate(expr, 60),
            e.reason,
            e.offset
        ))
    })?;
    match first_transform(&ast) {
        None => Ok(()),
        Some(what) => Err(ParseError::refused(format!(
            "`--query` may only select and filter fields, and this one calls {what}. \
             JMESPath functions are refused because they can reshape secrets so that redaction \
             no longer recognises them; remove the call and select the fields themselves."
        ))),
    }
}

/// The first node that computes rather than selects: a function call, or an `&expression`
/// (which only a function can use).
fn first_transform(ast: &Ast) -> Option<String> {
    match ast {
        Ast::Function { name, .. } => Some(format!("`{}(…)`", truncate(name, 40))),
        Ast::Expref { .. } => Some("an `&expression`".into()),
        Ast::Identity { .. }
        | Ast::Field { .. }
        | Ast::Index { .. }
        | Ast::Slice { .. }
        | Ast::Literal { .. } => None,
        Ast::Comparison { lhs, rhs, .. }
        | Ast::And { lhs, rhs, .. }
        | Ast::Or { lhs, rhs, .. }
        | Ast::Projection { lhs, rhs, .. }
        | Ast::Subexpr { lhs, rhs, .. } => first_transform(lhs).or_else(|| first_transform(rhs)),
        Ast::Condition {
            predicate, then, ..
        } => first_transform(predicate).or_else(|| first_transform(then)),
        Ast::Flatten { node, .. } | Ast::Not { node, .. } | Ast::ObjectValues { node, .. } => {
            first_transform(node)
        }
        Ast::MultiList { elements, .. } => elements.iter().find_map(first_transform),
        Ast::MultiHash { elements, .. } => {
            elements.iter().find_map(|kv| first_transform(&kv.value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::ParseErrorKind;

    #[test]
    fn selections_and_filters_pass() {
        for q in [
            "Reservations[].Instances[].InstanceId",
            "Reservations[].Instances[].[InstanceId, State.Name]",
            "Reservations[].Instances[?State.Name=='running'].{Id: InstanceId, Type: InstanceType}",
            "Stacks[0].Outputs[?OutputKey == `\"Url\"`].OutputValue | [0]",
            "Buckets[*].Name",
            "Items[?!Name]",
            "length",
            "\"reverse\"",
            "Functions[].\"to_string\"",
            "Tags[?Key=='reverse(x)'].Value",
        ] {
            check(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn functions_are_refused_however_they_are_written() {
        for q in [
            "reverse(Functions[].Environment.Variables)",
            "Functions[].Environment.Variables | reverse(@)",
            "Functions[].reverse ( Environment.Variables.TOKEN )",
            "Functions[].{k: join('', reverse(Environment.Variables.*))}",
            "[to_string(@)]",
            "Items[?contains(Name, 'x')]",
            "sort_by(Items, &Name)",
            "Items[].[Name, map(&to_string(@), Tags)]",
            "a || to_string(b)",
            "!(length(x))",
            "Items[?Name]. values(@)",
        ] {
            let e = check(q).unwrap_err();
            assert_eq!(e.kind, ParseErrorKind::Refused, "{q}: {e}");
            assert!(e.message.contains("only select and filter"), "{q}: {e}");
        }
    }

    #[test]
    fn malformed_and_oversized_queries_are_errors_not_panics() {
        assert_eq!(check("Items[").unwrap_err().kind, ParseErrorKind::Invalid);
        assert_eq!(check("a b").unwrap_err().kind, ParseErrorKind::Invalid);
        let long = "a.".repeat(MAX_QUERY_LEN);
        assert_eq!(check(&long).unwrap_err().kind, ParseErrorKind::Refused);
        let too_deep = format!(
            "{}a{}",
            "(".repeat(MAX_NESTING + 1),
            ")".repeat(MAX_NESTING + 1)
        );
        assert_eq!(check(&too_deep).unwrap_err().kind, ParseErrorKind::Refused);
        // The deepest nesting the caps allow parses well within a small stack.
        let deepest: Vec<String> = vec![
            format!("{}a", "!".repeat(MAX_NESTING)),
            format!("{}a{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING)),
            format!("{}b{}", "a[?".repeat(MAX_NESTING), "]".repeat(MAX_NESTING)),
            format!("{}b{}", "{a:".repeat(MAX_NESTING), "}".repeat(MAX_NESTING)),
            format!("a{}", ".*".repeat(MAX_NESTING)),
            format!("a{}", ".a".repeat(MAX_QUERY_LEN / 2 - 1)),
        ];
        let small_stack = std::thread::Builder::new().stack_size(512 * 1024);
        small_stack
            .spawn(move || {
                for q in &deepest {
                    let _ = check(q);
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
