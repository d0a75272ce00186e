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
    let mut next = first_choice;
    message_numbered(text, blocks, &mut |_| {
        let n = next;
        next = next.saturating_add(1);
        n
    })
}

/// Like [`message`], with each button's number chosen by `number` (so a button can keep its
/// number when its message is edited).
pub fn message_numbered(
    text: &str,
    blocks: &Value,
    number: &mut dyn FnMut(&Button) -> usize,
) -> Rendered {
    let mut out = Out {
        number: Some(number),
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

/// The rendering in progress; `number` numbers buttons, None when not numbering.
#[derive(Default)]
struct Out<'a> {
    lines: Vec<String>,
    buttons: Vec<Button>,
    number: Option<&'a mut dyn FnMut(&Button) -> usize>,
}

impl Out<'_> {
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
                    tokens.push(match self.number.as_mut() {
                        Some(number) => {
                            let n = number(&b);
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
mod tests;
