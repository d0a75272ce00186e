//! Block Kit as terminal text, for `slipway demo`: there the terminal is the Slack channel, so the
//! messages and modals the bridge posts are printed as plain text (no ANSI codes) and buttons
//! become numbered choices. Pure (JSON in, text and choices out) so it is unit-tested, and total:
//! unknown or malformed blocks degrade to their `text`, or are skipped, never a panic.

use serde_json::{Map, Value, json};

/// A clickable button found in a message's blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub label: String,
    pub action_id: String,
    pub block_id: Option<String>,
    pub value: Option<String>,
    /// "primary" or "danger" when set.
    pub style: Option<String>,
    /// Slack's confirmation dialog on the button, if any.
    pub confirm: Option<Confirm>,
}

/// A button's confirmation dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub title: String,
    pub text: String,
    pub confirm: String,
    pub deny: String,
}

/// A message rendered for the terminal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rendered {
    /// Lines to print (no trailing newlines inside).
    pub lines: Vec<String>,
    /// The buttons, in order; `lines` shows them as `[n] Label` numbered from `first_choice`.
    pub buttons: Vec<Button>,
}

/// One input of a modal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub block_id: String,
    pub action_id: String,
    /// The element type, e.g. `plain_text_input`.
    pub kind: String,
    pub label: String,
    pub hint: Option<String>,
    pub optional: bool,
    pub multiline: bool,
    pub initial_value: Option<String>,
}

/// A modal (view) rendered for the terminal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Modal {
    pub title: String,
    /// Everything except the inputs, rendered like a message's blocks (no buttons numbered).
    pub lines: Vec<String>,
    pub inputs: Vec<Input>,
    /// The submit button's text (None: the modal has no submit, it is informational).
    pub submit: Option<String>,
    pub close: Option<String>,
}

/// Buttons on one line are wrapped past this many characters.
const WRAP: usize = 72;

/// Renders a message: `text` is the message's fallback text, used when `blocks` is empty or not an
/// array (or renders to nothing at all). Buttons are numbered `first_choice`, `first_choice + 1`, …
#[must_use]
pub fn message(text: &str, blocks: &Value, first_choice: usize) -> Rendered {
    let mut out = Out {
        next: Some(first_choice),
        ..Out::default()
    };
    for block in items(blocks) {
        out.block(block);
    }
    if out.lines.is_empty() && out.buttons.is_empty() {
        out.push(&mrkdwn(text));
    }
    Rendered {
        lines: out.lines,
        buttons: out.buttons,
    }
}

/// Renders a modal: its non-input blocks as lines, its inputs to prompt for.
#[must_use]
pub fn modal(view: &Value) -> Modal {
    let mut out = Out::default();
    let mut inputs = Vec::new();
    for (i, block) in items(&view["blocks"]).iter().enumerate() {
        if block["type"] != "input" {
            out.block(block);
            continue;
        }
        let el = &block["element"];
        inputs.push(Input {
            block_id: string(&block["block_id"]).unwrap_or_else(|| format!("block_{i}")),
            action_id: string(&el["action_id"]).unwrap_or_else(|| format!("action_{i}")),
            kind: string(&el["type"]).unwrap_or_else(|| "plain_text_input".to_string()),
            label: text_of(&block["label"]),
            hint: non_empty(text_of(&block["hint"])),
            optional: block["optional"].as_bool().unwrap_or(false),
            multiline: el["multiline"].as_bool().unwrap_or(false),
            initial_value: string(&el["initial_value"]),
        });
    }
    Modal {
        title: text_of(&view["title"]),
        lines: out.lines,
        inputs,
        submit: non_empty(text_of(&view["submit"])),
        close: non_empty(text_of(&view["close"])),
    }
}

/// The `state.values` object of a `view_submission` for these answers:
/// `{block_id: {action_id: {"type": kind, "value": answer}}}` (Slack's format for
/// `plain_text_input`; an empty optional answer becomes `"value": null`). A missing answer is empty.
pub fn submission_values(inputs: &[Input], answers: &[String]) -> Value {
    let mut values = Map::new();
    for (i, input) in inputs.iter().enumerate() {
        let answer = answers.get(i).map_or("", String::as_str);
        let value = (!answer.is_empty() || !input.optional).then_some(answer);
        let field = json!({"type": input.kind, "value": value});
        let block = values.entry(&input.block_id).or_insert_with(|| json!({}));
        if let Some(block) = block.as_object_mut() {
            block.insert(input.action_id.clone(), field);
        }
    }
    Value::Object(values)
}

/// Slack mrkdwn to terminal text: links and mentions spelled out, entities unescaped, code
/// fences as 4-space indented lines. Emphasis marks and inline code are kept; they read fine.
#[must_use]
pub fn mrkdwn(text: &str) -> String {
    let parts: Vec<&str> = text.split("```").collect();
    let mut lines: Vec<String> = Vec::new();
    let mut pending = String::new();
    let mut after_code = false;
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 1 && i + 1 < parts.len() {
            flush(&mut lines, &pending, after_code, true);
            pending.clear();
            let code = part.strip_prefix('\n').unwrap_or(part);
            let code = code.strip_suffix('\n').unwrap_or(code);
            let code = unescape(code);
            lines.extend(
                code.split('\n')
                    .map(|l| format!("    {l}").trim_end().to_string()),
            );
            after_code = true;
        } else {
            if i % 2 == 1 {
                pending.push_str("```"); // an unclosed fence is literal
            }
            pending.push_str(part);
        }
    }
    flush(&mut lines, &pending, after_code, false);
    lines.join("\n")
}

/// Adds the prose between code blocks, without the newlines that only separate it from them.
fn flush(lines: &mut Vec<String>, prose: &str, after_code: bool, before_code: bool) {
    let nl = |on: bool| if on { "\n" } else { "" };
    let prose = prose.strip_prefix(nl(after_code)).unwrap_or(prose);
    let prose = prose.strip_suffix(nl(before_code)).unwrap_or(prose);
    if !prose.is_empty() {
        let prose = emoji(&unescape(&links(prose)));
        lines.extend(prose.split('\n').map(|l| l.trim_end().to_string()));
    }
}

/// `<url|label>`, `<@U1>`, `<#C1|name>`, `<!here>` spelled out; other `<…>` left as is.
fn links(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &after[..end];
        let (target, label) = match inner.split_once('|') {
            Some((t, l)) if !l.is_empty() => (t, Some(l)),
            Some((t, _)) => (t, None),
            None => (inner, None),
        };
        let bare = target.trim_start_matches('!');
        let piece = match (target.chars().next(), label) {
            (Some('@'), Some(l)) => format!("@{}", l.trim_start_matches('@')),
            (Some('#'), Some(l)) => format!("#{}", l.trim_start_matches('#')),
            (Some('@' | '#'), None) => target.to_string(),
            (Some('!'), Some(l)) => l.to_string(),
            (Some('!'), None) => format!("@{}", bare.split('^').next().unwrap_or_default()),
            _ if target.contains("://") || target.starts_with("mailto:") => match label {
                Some(l) if l != target => format!("{l} ({target})"),
                _ => target.to_string(),
            },
            _ => rest[start..=start + 1 + end].to_string(),
        };
        out.push_str(&piece);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The shortcodes the bridge uses, as the characters Slack shows; others stay as typed.
const EMOJI: &[(&str, &str)] = &[
    (":white_check_mark:", "✅"),
    (":x:", "❌"),
    (":no_entry:", "⛔"),
    (":no_entry_sign:", "🚫"),
    (":hourglass:", "⌛"),
    (":hourglass_flowing_sand:", "⏳"),
    (":warning:", "⚠️"),
    (":memo:", "📝"),
    (":twisted_rightwards_arrows:", "🔀"),
    (":robot_face:", "🤖"),
    (":mag:", "🔍"),
    (":stop_sign:", "🛑"),
    (":key:", "🔑"),
    (":lock:", "🔒"),
    (":stopwatch:", "⏱"),
    (":mute:", "🔇"),
    (":bell:", "🔔"),
];

fn emoji(text: &str) -> String {
    if !text.contains(':') {
        return text.to_string();
    }
    EMOJI
        .iter()
        .fold(text.to_string(), |t, (code, glyph)| t.replace(code, glyph))
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A text object's text: mrkdwn rendered, `plain_text` as is; a bare string as is; else empty.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("text") {
            Some(Value::String(s)) if v["type"] == "mrkdwn" => mrkdwn(s),
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

/// An array's items; nothing for anything else.
fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// The non-empty texts of an array of text objects (or images).
fn texts(v: &Value) -> Vec<String> {
    let text = |e: &Value| {
        if e["type"] == "image" {
            image(e)
        } else {
            text_of(e)
        }
    };
    items(v)
        .iter()
        .map(text)
        .filter(|t| !t.is_empty())
        .collect()
}

fn string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

/// The rendering in progress; `next` is the next button's number, None when not numbering.
#[derive(Default)]
struct Out {
    lines: Vec<String>,
    buttons: Vec<Button>,
    next: Option<usize>,
}

impl Out {
    /// Pushes (possibly multi-line) text.
    fn push(&mut self, text: &str) {
        self.lines.extend(text.lines().map(str::to_string));
    }

    /// Pushes text with `first` before its first line and `other` before the rest.
    fn push_prefixed(&mut self, text: &str, first: &str, other: &str) {
        for (i, line) in text.lines().enumerate() {
            let prefix = if i == 0 { first } else { other };
            let line = format!("{prefix}{line}");
            self.lines.push(line.trim_end().to_string());
        }
    }

    fn block(&mut self, block: &Value) {
        let block_id = block["block_id"].as_str();
        match block["type"].as_str().unwrap_or_default() {
            "section" => {
                self.push(&text_of(&block["text"]));
                for pair in texts(&block["fields"]).chunks(2) {
                    match pair {
                        [a, b]
                            if a.chars().count() < 36
                                && !(a.contains('\n') || b.contains('\n')) =>
                        {
                            self.push(&format!("{a:<38}{b}"));
                        }
                        _ => pair.iter().for_each(|f| self.push(f)),
                    }
                }
                let accessory = &block["accessory"];
                if accessory.is_object() {
                    self.elements(std::slice::from_ref(accessory), block_id);
                }
            }
            "header" => {
                let text = text_of(&block["text"]);
                if !text.is_empty() {
                    let width = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
                    self.push(&text);
                    self.lines.push("═".repeat(width));
                }
            }
            "context" => {
                let text = texts(&block["elements"]).join("  ");
                self.push_prefixed(&text, "  · ", "    ");
            }
            "divider" => self.lines.push("─".repeat(40)),
            "actions" => self.elements(items(&block["elements"]), block_id),
            "rich_text" => {
                for el in items(&block["elements"]) {
                    self.rich(el);
                }
            }
            "image" => self.lines.push(image(block)),
            "input" => {
                let label = non_empty(text_of(&block["label"])).unwrap_or_else(|| "input".into());
                self.lines.push(format!("{label}: ____"));
            }
            _ => self.push(&text_of(&block["text"])),
        }
    }

    /// Buttons (numbered, on wrapped lines), link buttons (a line each) and other elements.
    fn elements(&mut self, elements: &[Value], block_id: Option<&str>) {
        let mut tokens = Vec::new();
        let mut links = Vec::new();
        for el in elements {
            match el["type"].as_str() {
                Some("button") => {
                    let b = button(el, block_id);
                    if let Some(url) = el["url"].as_str() {
                        links.push(format!("↗ {}: {url}", b.label));
                        continue;
                    }
                    let danger = match b.style.as_deref() {
                        Some("danger") => " (danger)",
                        _ => "",
                    };
                    tokens.push(match self.next {
                        Some(n) => {
                            self.next = Some(n.saturating_add(1));
                            format!("[{n}] {}{danger}", b.label)
                        }
                        None => format!("[{}]{danger}", b.label),
                    });
                    self.buttons.push(b);
                }
                Some("image") => tokens.push(image(el)),
                Some(kind) => {
                    let kind = if kind.ends_with("_select") || kind == "overflow" {
                        "select"
                    } else {
                        kind
                    };
                    tokens.push(match non_empty(text_of(&el["placeholder"])) {
                        Some(p) => format!("({kind}: {p})"),
                        None => format!("({kind})"),
                    });
                }
                None => {}
            }
        }
        let mut line = String::new();
        for token in tokens {
            if !line.is_empty() && line.chars().count() + 2 + token.chars().count() > WRAP {
                self.lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push_str("  ");
            }
            line.push_str(&token);
        }
        if !line.is_empty() {
            self.lines.push(line);
        }
        self.lines.extend(links);
    }

    /// A `rich_text` element: sections as text, preformatted as code, quotes and lists marked.
    fn rich(&mut self, el: &Value) {
        let (first, other) = match el["type"].as_str() {
            Some("rich_text_preformatted") => ("    ", "    "),
            Some("rich_text_quote") => ("> ", "> "),
            Some("rich_text_list") => {
                for item in items(&el["elements"]) {
                    self.push_prefixed(&rich_inline(&item["elements"]), "• ", "  ");
                }
                return;
            }
            _ => ("", ""),
        };
        self.push_prefixed(&rich_inline(&el["elements"]), first, other);
    }
}

/// The inline elements of a `rich_text` section, concatenated.
fn rich_inline(elements: &Value) -> String {
    let mut out = String::new();
    for e in items(elements) {
        let text = e["text"].as_str();
        let part = match e["type"].as_str() {
            Some("link") => match (text, e["url"].as_str()) {
                (Some(t), Some(u)) if t != u => format!("{t} ({u})"),
                (_, Some(u)) => u.to_string(),
                (t, None) => t.unwrap_or_default().to_string(),
            },
            Some("user") => format!("@{}", e["user_id"].as_str().unwrap_or_default()),
            Some("usergroup") => format!("@{}", e["usergroup_id"].as_str().unwrap_or_default()),
            Some("channel") => format!("#{}", e["channel_id"].as_str().unwrap_or_default()),
            Some("broadcast") => format!("@{}", e["range"].as_str().unwrap_or_default()),
            Some("emoji") => format!(":{}:", e["name"].as_str().unwrap_or_default()),
            _ => text.unwrap_or_default().to_string(),
        };
        out.push_str(&part);
    }
    out
}

fn image(el: &Value) -> String {
    let alt = non_empty(text_of(&el["alt_text"])).or_else(|| non_empty(text_of(&el["title"])));
    format!("[image: {}]", alt.unwrap_or_else(|| "image".into()))
}

fn button(el: &Value, block_id: Option<&str>) -> Button {
    let action_id = string(&el["action_id"]).unwrap_or_default();
    let label = non_empty(text_of(&el["text"]))
        .or_else(|| non_empty(action_id.clone()))
        .unwrap_or_else(|| "button".into());
    let c = &el["confirm"];
    let or = |v: &Value, default: &str| non_empty(text_of(v)).unwrap_or_else(|| default.into());
    Button {
        label,
        action_id,
        block_id: block_id.map(str::to_string),
        value: string(&el["value"]),
        style: string(&el["style"]),
        confirm: c.is_object().then(|| Confirm {
            title: or(&c["title"], "Are you sure?"),
            text: or(&c["text"], ""),
            confirm: or(&c["confirm"], "Yes"),
            deny: or(&c["deny"], "Cancel"),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn change_blocks() -> Value {
        json!([
          {"type":"section","text":{"type":"mrkdwn","text":"*Change request* `/deploy api staging --apply` by <@U0OPERATOR>"}},
          {"type":"context","elements":[{"type":"mrkdwn","text":"rule `standard` · 0/2 approvals · <http://127.0.0.1:1/acme/gitops/pull/1|PR #1>"}]},
          {"type":"section","text":{"type":"mrkdwn","text":"```\n-  newTag: \"v1.0.0\"\n+  newTag: \"v2.0.0\"\n```"}},
          {"type":"actions","block_id":"slipway_change","elements":[
            {"type":"button","action_id":"slipway_approve","text":{"type":"plain_text","text":"Approve"},"style":"primary","value":"acme/gitops#1"},
            {"type":"button","action_id":"slipway_reject","text":{"type":"plain_text","text":"Reject"},"style":"danger","value":"acme/gitops#1"},
            {"type":"button","action_id":"slipway_view_pr","text":{"type":"plain_text","text":"View PR"},"url":"http://127.0.0.1:1/acme/gitops/pull/1","value":"x"}]}
        ])
    }

    #[test]
    fn change_request() {
        let r = message("fallback", &change_blocks(), 1);
        assert_eq!(
            r.lines,
            [
                "*Change request* `/deploy api staging --apply` by @U0OPERATOR",
                "  · rule `standard` · 0/2 approvals · PR #1 (http://127.0.0.1:1/acme/gitops/pull/1)",
                "    -  newTag: \"v1.0.0\"",
                "    +  newTag: \"v2.0.0\"",
                "[1] Approve  [2] Reject (danger)",
                "↗ View PR: http://127.0.0.1:1/acme/gitops/pull/1",
            ]
        );
        assert_eq!(r.buttons.len(), 2);
        assert_eq!(
            r.buttons[0],
            Button {
                label: "Approve".into(),
                action_id: "slipway_approve".into(),
                block_id: Some("slipway_change".into()),
                value: Some("acme/gitops#1".into()),
                style: Some("primary".into()),
                confirm: None,
            }
        );
        assert_eq!(r.buttons[1].action_id, "slipway_reject");
        assert_eq!(r.buttons[1].style.as_deref(), Some("danger"));
    }

    #[test]
    fn numbering_starts_at_first_choice_and_wraps() {
        let r = message("", &change_blocks(), 7);
        assert_eq!(r.lines[4], "[7] Approve  [8] Reject (danger)");
        let many: Vec<Value> = (0..12)
            .map(|i| json!({"type":"button","action_id":format!("a{i}"),"text":{"type":"plain_text","text":format!("Button {i}")}}))
            .collect();
        let r = message("", &json!([{"type":"actions","elements":many}]), 1);
        assert_eq!(r.buttons.len(), 12);
        assert!(r.lines.len() > 1 && r.lines.iter().all(|l| l.chars().count() <= WRAP));
        assert!(r.lines[0].starts_with("[1] Button 0  [2] Button 1"));
        assert!(r.lines.last().unwrap().ends_with("[12] Button 11"));
    }

    #[test]
    fn fallback_text_when_no_blocks() {
        let r = message("hello <@U1> &amp; bye", &json!([]), 1);
        assert_eq!(r.lines, ["hello @U1 & bye"]);
        assert_eq!(message("a\nb", &Value::Null, 1).lines, ["a", "b"]);
        assert!(message("", &json!([]), 1).lines.is_empty());
    }

    #[test]
    fn accessory_button_fields_header_divider() {
        let blocks = json!([
          {"type":"header","text":{"type":"plain_text","text":"Deploys"}},
          {"type":"section","block_id":"b1","text":{"type":"mrkdwn","text":"Run done"},
           "fields":[{"type":"mrkdwn","text":"*Exit* 0"},{"type":"mrkdwn","text":"*Took* 3s"},{"type":"plain_text","text":"x"}],
           "accessory":{"type":"button","action_id":"retry","text":{"type":"plain_text","text":"Retry"},
             "confirm":{"title":{"type":"plain_text","text":"Retry?"},"text":{"type":"mrkdwn","text":"Run *again*"},
                        "confirm":{"type":"plain_text","text":"Go"},"deny":{"type":"plain_text","text":"No"}}}},
          {"type":"divider"},
          {"type":"image","alt_text":"graph","image_url":"http://x"},
          {"type":"actions","elements":[{"type":"static_select","placeholder":{"type":"plain_text","text":"Env"}}]}
        ]);
        let r = message("", &blocks, 3);
        assert_eq!(
            r.lines,
            [
                "Deploys",
                "═══════",
                "Run done",
                &format!("{:<38}*Took* 3s", "*Exit* 0"),
                "x",
                "[3] Retry",
                &"─".repeat(40),
                "[image: graph]",
                "(select: Env)",
            ]
        );
        assert_eq!(r.buttons.len(), 1);
        assert_eq!(r.buttons[0].block_id.as_deref(), Some("b1"));
        let c = r.buttons[0].confirm.clone().unwrap();
        assert_eq!(
            [c.title, c.text, c.confirm, c.deny],
            ["Retry?", "Run *again*", "Go", "No"]
        );
    }

    #[test]
    fn rich_text() {
        let blocks = json!([{"type":"rich_text","elements":[
          {"type":"rich_text_section","elements":[{"type":"text","text":"hi "},{"type":"user","user_id":"U1"},
            {"type":"link","url":"https://x","text":"site"}]},
          {"type":"rich_text_preformatted","elements":[{"type":"text","text":"a\nb"}]},
          {"type":"rich_text_list","style":"bullet","elements":[
            {"type":"rich_text_section","elements":[{"type":"text","text":"one"}]}]}]}]);
        assert_eq!(
            message("", &blocks, 1).lines,
            ["hi @U1site (https://x)", "    a", "    b", "• one"]
        );
    }

    #[test]
    fn mrkdwn_cases() {
        assert_eq!(
            mrkdwn("see <https://x.io/a?b=1&amp;c=2|the docs>"),
            "see the docs (https://x.io/a?b=1&c=2)"
        );
        assert_eq!(mrkdwn("<https://x.io>"), "https://x.io");
        assert_eq!(
            mrkdwn("<@U123> in <#C1|ops> <#C2> <!here> <!subteam^S1|@sre>"),
            "@U123 in #ops #C2 @here @sre"
        );
        assert_eq!(mrkdwn("a &lt;b&gt; &amp;lt; <none>"), "a <b> &lt; <none>");
        assert_eq!(mrkdwn("*bold* _it_ ~s~ `code`"), "*bold* _it_ ~s~ `code`");
        assert_eq!(
            mrkdwn("open <https://x|unclosed"),
            "open <https://x|unclosed"
        );
        assert_eq!(
            mrkdwn("Output:\n```\n$ ls\n<none> &amp;\n\n```\nexit 0"),
            "Output:\n    $ ls\n    <none> &\n\nexit 0"
        );
        assert_eq!(mrkdwn("```\nfoo```"), "    foo");
        assert_eq!(mrkdwn("diff: ```a```"), "diff:\n    a");
        assert_eq!(mrkdwn("run:```x\ny```done"), "run:\n    x\n    y\ndone");
        assert_eq!(mrkdwn("a ``` b"), "a ``` b");
        assert_eq!(mrkdwn("line1\nline2"), "line1\nline2");
    }

    #[test]
    fn reject_modal() {
        let view = json!({
          "type":"modal","callback_id":"slipway_reject","private_metadata":"{\"pr\":1}",
          "title":{"type":"plain_text","text":"Request changes"},
          "submit":{"type":"plain_text","text":"Request changes"},
          "close":{"type":"plain_text","text":"Cancel"},
          "blocks":[
            {"type":"section","text":{"type":"mrkdwn","text":"Reject <http://h/acme/gitops/pull/1|PR #1>?"}},
            {"type":"input","block_id":"reason","optional":true,
             "label":{"type":"plain_text","text":"Reason"},
             "hint":{"type":"plain_text","text":"Shown on the pull request as your review's text."},
             "element":{"type":"plain_text_input","action_id":"reject_reason","multiline":true,"max_length":2000,
               "placeholder":{"type":"plain_text","text":"What has to change before you'd approve?"}}}]});
        let m = modal(&view);
        assert_eq!(m.title, "Request changes");
        assert_eq!(m.lines, ["Reject PR #1 (http://h/acme/gitops/pull/1)?"]);
        assert_eq!(
            (m.submit.as_deref(), m.close.as_deref()),
            (Some("Request changes"), Some("Cancel"))
        );
        assert_eq!(
            m.inputs,
            [Input {
                block_id: "reason".into(),
                action_id: "reject_reason".into(),
                kind: "plain_text_input".into(),
                label: "Reason".into(),
                hint: Some("Shown on the pull request as your review's text.".into()),
                optional: true,
                multiline: true,
                initial_value: None,
            }]
        );
        assert_eq!(
            submission_values(&m.inputs, &[String::new()]),
            json!({"reason":{"reject_reason":{"type":"plain_text_input","value":null}}})
        );
        assert_eq!(
            submission_values(&m.inputs, &["Use v2.1".into()]),
            json!({"reason":{"reject_reason":{"type":"plain_text_input","value":"Use v2.1"}}})
        );
    }

    #[test]
    fn typed_confirmation_modal() {
        let view = json!({
          "type":"modal","callback_id":"slipway_destructive","private_metadata":"tok",
          "title":{"type":"plain_text","text":"Confirm deletion"},
          "submit":{"type":"plain_text","text":"Open the PR"},
          "close":{"type":"plain_text","text":"Cancel"},
          "blocks":[
            {"type":"section","text":{"type":"mrkdwn","text":"*Delete* `svc/api`"}},
            {"type":"input","block_id":"confirm",
             "label":{"type":"plain_text","text":"Type the resource name to confirm"},
             "hint":{"type":"plain_text","text":"api"},
             "element":{"type":"plain_text_input","action_id":"confirm_text","max_length":255}}]});
        let m = modal(&view);
        assert_eq!(m.lines, ["*Delete* `svc/api`"]);
        assert_eq!(m.inputs.len(), 1);
        let i = &m.inputs[0];
        assert!(!i.optional && !i.multiline);
        assert_eq!(
            (i.label.as_str(), i.hint.as_deref()),
            ("Type the resource name to confirm", Some("api"))
        );
        assert_eq!(
            submission_values(&m.inputs, &["api".into()]),
            json!({"confirm":{"confirm_text":{"type":"plain_text_input","value":"api"}}})
        );
        assert_eq!(
            submission_values(&m.inputs, &[]),
            json!({"confirm":{"confirm_text":{"type":"plain_text_input","value":""}}})
        );
    }

    #[test]
    fn garbage_never_panics() {
        for blocks in [
            json!(42),
            json!("x"),
            json!([1, "x", {"type": "section"}]),
            json!([{"type":"actions","elements":"nope"}]),
            json!([{"type":"actions","elements":[1, {"type":"button"}, {"type":"button","url":7}]}]),
            json!([{"type":"context","elements":[{"type":"image"}, null]}, {"type":7}, {"type":"header","text":"é"}]),
            json!([{"type":"section","text":{"type":"mrkdwn","text":{"nested":[]}},"fields":{"a":1},"accessory":[]}]),
            json!([{"type":"rich_text","elements":[{"type":"rich_text_list","indent":99_999_999_999_u64,"elements":[1]}]}]),
            json!([{"type":"mystery","text":{"type":"mrkdwn","text":"<é|ü> <!x^y> <> <|> < `"}}]),
        ] {
            let r = message("fb", &blocks, usize::MAX - 1);
            assert!(r.lines.iter().all(|l| !l.contains('\n')));
            let _ = modal(&json!({"blocks": blocks, "title": 3, "submit": []}));
        }
        assert_eq!(message("fb", &json!(42), 1).lines, ["fb"]);
        let nameless = json!([{"type":"actions","elements":[{"type":"button"}]}]);
        assert_eq!(message("", &nameless, 1).lines, ["[1] button"]);
        assert_eq!(modal(&json!(null)), Modal::default());
    }
}
