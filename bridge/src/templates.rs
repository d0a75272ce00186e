//! Block Kit and PR-body templates from `templates/`, compiled into the binary. Block Kit templates
//! render JSON: every interpolated value is JSON-escaped by the environment, so user text can't
//! break out of a string.

use std::sync::OnceLock;

use minijinja::{AutoEscape, Environment};
use serde::Serialize;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".json.j2") {
                AutoEscape::Json
            } else {
                AutoEscape::None
            }
        });
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        // Files rendered from templates (manifests) end with a newline like any text file.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        for (name, src) in TEMPLATES {
            if let Err(e) = env.add_template(name, src) {
                // Templates are compiled in; a broken one is caught by the template tests.
                tracing::error!(template = name, error = %e, "template does not compile");
            }
        }
        env
    })
}

/// Every template, by name.
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "blocks/run.json.j2",
        include_str!("../../templates/blocks/run.json.j2"),
    ),
    (
        "blocks/output.json.j2",
        include_str!("../../templates/blocks/output.json.j2"),
    ),
    (
        "blocks/change.json.j2",
        include_str!("../../templates/blocks/change.json.j2"),
    ),
    (
        "blocks/confirm_destructive.json.j2",
        include_str!("../../templates/blocks/confirm_destructive.json.j2"),
    ),
    (
        "blocks/approve.json.j2",
        include_str!("../../templates/blocks/approve.json.j2"),
    ),
    (
        "blocks/reject.json.j2",
        include_str!("../../templates/blocks/reject.json.j2"),
    ),
    (
        "pr/body.md.j2",
        include_str!("../../templates/pr/body.md.j2"),
    ),
    (
        "manifests/kustomization.yaml.j2",
        include_str!("../../templates/manifests/kustomization.yaml.j2"),
    ),
];

/// Render a template to text.
pub fn render(name: &str, ctx: impl Serialize) -> Result<String, String> {
    let t = env()
        .get_template(name)
        .map_err(|e| format!("template {name}: {e}"))?;
    t.render(minijinja::value::Serde(ctx))
        .map_err(|e| format!("template {name}: {e:#}"))
}

/// Render a JSON template (a modal view, …) to one value.
pub fn render_json(name: &str, ctx: impl Serialize) -> Result<serde_json::Value, String> {
    let text = render(name, ctx)?;
    serde_json::from_str(&text).map_err(|e| format!("template {name} rendered invalid JSON: {e}"))
}

/// Render a Block Kit template to a list of blocks.
pub fn render_blocks(name: &str, ctx: impl Serialize) -> Result<Vec<serde_json::Value>, String> {
    let text = render(name, ctx)?;
    serde_json::from_str(&text).map_err(|e| format!("template {name} rendered invalid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_templates_compile() {
        for (name, _) in TEMPLATES {
            assert!(env().get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn change_message_renders_with_optional_button_fields() {
        let buttons = serde_json::json!([
            {"action_id": "slipway_approve", "text": "Approve", "style": "primary", "value": "1"},
            {"action_id": "slipway_open_pr", "text": "View PR", "url": "https://example/pr/1", "value": "1"},
            {"action_id": "slipway_plain", "text": "Plain", "value": "1"}
        ]);
        let blocks = render_blocks(
            "blocks/change.json.j2",
            minijinja::context! { headline => "h", context => "c", diff => "d", note => "", buttons => minijinja::value::Serde(buttons) },
        )
        .unwrap();
        let actions = &blocks[3]["elements"];
        assert_eq!(actions[0]["style"], "primary");
        assert_eq!(actions[1]["url"], "https://example/pr/1");
        assert!(actions[2].get("style").is_none());
    }

    #[test]
    fn values_are_json_escaped() {
        let blocks = render_blocks(
            "blocks/run.json.j2",
            minijinja::context! { headline => "a \"quoted\" } ] , {", context => "c", output => "", note => "", cancel_value => "" },
        )
        .unwrap();
        assert_eq!(blocks[0]["text"]["text"], "a \"quoted\" } ] , {");
        assert_eq!(blocks.len(), 2);
    }

    #[test]
    fn output_fields_are_json_escaped() {
        let blocks = render_blocks(
            "blocks/output.json.j2",
            minijinja::context! { headline => "h", context => "c", fields => ["*To add*\n2", "a \"q\" ,"], output => "", note => "n" },
        )
        .unwrap();
        assert_eq!(blocks[0]["fields"][1]["text"], "a \"q\" ,");
        assert_eq!(blocks.len(), 3);
        let blocks = render_blocks(
            "blocks/output.json.j2",
            minijinja::context! { headline => "h", context => "c", fields => Vec::<String>::new(), output => "o", note => "" },
        )
        .unwrap();
        assert!(blocks[0].get("fields").is_none());
        assert_eq!(blocks.len(), 3);
    }
}
