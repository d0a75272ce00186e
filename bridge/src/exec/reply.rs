//! The pieces every backend's reply is made of: a code fence that output can't close, a head
//! cut to Block Kit's section limit, and the thread reply rendered from
//! `templates/blocks/output.json.j2`.

use crate::slack::client::Message;

/// Section text limit, less room for the code fence.
pub const SECTION_BUDGET: usize = 2900;

/// An argv as a person reads it: words with spaces or quotes are quoted.
pub fn shown_command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains([' ', '\'', '"', '`']) {
                format!("'{}'", a.replace('\'', "’"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Keep the first characters of `text` that fit `budget`, on a line boundary where possible.
pub fn fit_head(text: &str, budget: usize) -> (String, bool) {
    if text.chars().count() <= budget {
        return (text.to_string(), false);
    }
    let head: String = text.chars().take(budget).collect();
    let head = match head.rfind('\n') {
        Some(i) if i > head.len() / 2 => head[..i].to_string(),
        _ => head,
    };
    (head, true)
}

/// A code block that can't be closed early by the output itself.
pub fn code(text: &str) -> String {
    format!("```\n{}\n```", text.replace("```", "`\u{200b}``"))
}

/// The parts of a thread reply, rendered with `templates/blocks/output.json.j2`.
#[derive(Debug, Default)]
pub struct Reply {
    pub headline: String,
    pub context: String,
    /// Short mrkdwn fields shown side by side (at most 10).
    pub fields: Vec<String>,
    /// Already fenced or formatted; at most [`SECTION_BUDGET`] characters.
    pub output: String,
    pub note: String,
    pub fallback: String,
}

impl Reply {
    pub fn message(self) -> Message {
        let mut fields = self.fields;
        fields.truncate(10);
        let ctx = minijinja::context! {
            headline => self.headline,
            context => self.context,
            fields => fields,
            output => self.output,
            note => self.note,
        };
        match crate::templates::render_blocks("blocks/output.json.j2", ctx) {
            Ok(blocks) => Message {
                text: self.fallback,
                blocks,
            },
            Err(e) => {
                tracing::error!(error = %e, "rendering an output message");
                Message::text(self.fallback)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown() {
        assert_eq!(
            shown_command(&["kubectl".into(), "get".into(), "a b".into()]),
            "kubectl get 'a b'"
        );
    }
}
