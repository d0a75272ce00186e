//! Block Kit validation: the limits Slack (and slack_sdk's `validate_json` validators) apply to
//! message blocks and views, checked recursively through every block, element, option and text
//! object. Each violation is reported the way Slack's `invalid_blocks` errors read:
//! `"<what is wrong> [json-pointer:/blocks/0/text/text]"`.

use std::fmt::Display;

use serde_json::Value;

mod elements;
use elements::Slot;

/// Where blocks are shown; the block limit differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// A message (`chat.postMessage`, `chat.update`, `chat.postEphemeral`, response_url): 50 blocks.
    Message,
    /// A modal or home tab view: 100 blocks.
    Modal,
}

/// Validates a `blocks` array for `surface`. Returns one string per violation; empty means valid.
/// Pointers start at `/blocks`.
pub fn validate_blocks(blocks: &Value, surface: Surface) -> Vec<String> {
    let mut v = Validator::default();
    v.blocks(blocks, "/blocks", surface);
    v.errors
}

/// Validates a view object (`views.open` / `views.update` / `views.push`), including its blocks.
/// Pointers start at `/view`.
pub fn validate_view(view: &Value) -> Vec<String> {
    let mut v = Validator::default();
    v.view(view, "/view");
    v.errors
}

/// Block types Slack accepts in messages and views.
const BLOCK_TYPES: &[&str] = &[
    "section",
    "divider",
    "image",
    "actions",
    "context",
    "context_actions",
    "input",
    "file",
    "call",
    "header",
    "markdown",
    "video",
    "rich_text",
    "table",
    // Newer agent/assistant surfaces: accepted, not deep-checked.
    "task_card",
    "plan",
    "alert",
    "card",
    "container",
    "carousel",
    "auth_provider",
];

/// Elements that can sit in an `input` block (slack_sdk's `InputInteractiveElement` subclasses).
const INPUT_ELEMENTS: &[&str] = &[
    "plain_text_input",
    "email_text_input",
    "url_text_input",
    "number_input",
    "rich_text_input",
    "file_input",
    "checkboxes",
    "radio_buttons",
    "datepicker",
    "timepicker",
    "datetimepicker",
    "static_select",
    "external_select",
    "users_select",
    "conversations_select",
    "channels_select",
    "multi_static_select",
    "multi_external_select",
    "multi_users_select",
    "multi_conversations_select",
    "multi_channels_select",
];

/// Interactive elements that are not input elements.
const OTHER_INTERACTIVE: &[&str] = &[
    "button",
    "overflow",
    "workflow_button",
    "feedback_buttons",
    "icon_button",
];

fn is_interactive(t: &str) -> bool {
    INPUT_ELEMENTS.contains(&t) || OTHER_INTERACTIVE.contains(&t)
}

#[derive(Clone, Copy)]
struct TextRule {
    plain_only: bool,
    max: usize,
}

const fn plain(max: usize) -> TextRule {
    TextRule {
        plain_only: true,
        max,
    }
}

const fn any_text(max: usize) -> TextRule {
    TextRule {
        plain_only: false,
        max,
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<String>,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn join(path: &str, key: &str) -> String {
    format!("{path}/{key}")
}

impl Validator {
    fn err(&mut self, path: &str, msg: impl Display) {
        self.errors.push(format!("{msg} [json-pointer:{path}]"));
    }

    fn missing(&mut self, path: &str, key: &str) {
        self.err(&join(path, key), "missing required field");
    }

    /// A string field: must be a string if present; `max` characters at most.
    fn string(&mut self, obj: &Value, path: &str, key: &str, max: usize, required: bool) {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.missing(path, key);
                }
            }
            Some(Value::String(s)) => {
                let n = chars(s);
                if n > max {
                    self.err(
                        &join(path, key),
                        format!("must be less than {} characters (got {n})", max + 1),
                    );
                }
                if required && n == 0 {
                    self.err(&join(path, key), "must be more than 0 characters");
                }
            }
            Some(_) => self.err(&join(path, key), "expected a string"),
        }
    }

    /// A text object field (`{"type":"plain_text"|"mrkdwn","text":…}`).
    fn text_field(&mut self, obj: &Value, path: &str, key: &str, rule: TextRule, required: bool) {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.missing(path, key);
                }
            }
            Some(t) => self.text_object(t, &join(path, key), rule),
        }
    }

    fn text_object(&mut self, t: &Value, path: &str, rule: TextRule) {
        if !t.is_object() {
            self.err(path, "expected a text object");
            return;
        }
        match t.get("type").and_then(Value::as_str) {
            None => self.missing(path, "type"),
            Some("plain_text") => {}
            Some("mrkdwn") if !rule.plain_only => {}
            Some("mrkdwn") => self.err(&join(path, "type"), "must be plain_text here, not mrkdwn"),
            Some(other) => self.err(
                &join(path, "type"),
                format!("unsupported text type: {other}"),
            ),
        }
        self.string(t, path, "text", rule.max, true);
    }

    fn view(&mut self, view: &Value, path: &str) {
        if !view.is_object() {
            self.err(path, "expected a view object");
            return;
        }
        let kind = view.get("type").and_then(Value::as_str);
        match kind {
            None => self.missing(path, "type"),
            Some("modal" | "home" | "workflow_step") => {}
            Some(other) => self.err(
                &join(path, "type"),
                format!("unsupported view type: {other}"),
            ),
        }
        let modal = kind == Some("modal");
        self.text_field(view, path, "title", plain(24), modal);
        self.text_field(view, path, "submit", plain(24), false);
        self.text_field(view, path, "close", plain(24), false);
        if kind == Some("home") && (view.get("submit").is_some() || view.get("close").is_some()) {
            self.err(path, "home view cannot have submit and close");
        }
        self.string(view, path, "private_metadata", 3000, false);
        self.string(view, path, "callback_id", 255, false);
        self.string(view, path, "external_id", 255, false);
        match view.get("blocks") {
            None | Some(Value::Null) => self.missing(path, "blocks"),
            Some(blocks) => {
                let bpath = join(path, "blocks");
                if blocks.as_array().is_some_and(Vec::is_empty) {
                    self.err(&bpath, "must provide at least 1 items");
                }
                self.blocks(blocks, &bpath, Surface::Modal);
                let has_input = blocks.as_array().is_some_and(|b| {
                    b.iter()
                        .any(|b| b.get("type").and_then(Value::as_str) == Some("input"))
                });
                if modal && has_input && view.get("submit").is_none() {
                    self.missing(path, "submit");
                }
            }
        }
    }

    fn blocks(&mut self, blocks: &Value, path: &str, surface: Surface) {
        let Some(list) = blocks.as_array() else {
            self.err(path, "expected an array of blocks");
            return;
        };
        let max = match surface {
            Surface::Message => 50,
            Surface::Modal => 100,
        };
        if list.len() > max {
            self.err(
                path,
                format!("must provide at most {max} items (got {})", list.len()),
            );
        }
        for (i, block) in list.iter().enumerate() {
            self.block(block, &format!("{path}/{i}"));
        }
    }

    fn block(&mut self, b: &Value, path: &str) {
        if !b.is_object() {
            self.err(path, "expected a block object");
            return;
        }
        let Some(kind) = b.get("type").and_then(Value::as_str) else {
            self.missing(path, "type");
            return;
        };
        if !BLOCK_TYPES.contains(&kind) {
            self.err(
                &join(path, "type"),
                format!("unsupported block type: {kind}"),
            );
            return;
        }
        self.string(b, path, "block_id", 255, false);
        match kind {
            "section" => {
                self.text_field(b, path, "text", any_text(3000), false);
                match b.get("fields") {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(fields)) => {
                        if fields.len() > 10 {
                            self.err(
                                &join(path, "fields"),
                                format!("must provide at most 10 items (got {})", fields.len()),
                            );
                        }
                        for (i, f) in fields.iter().enumerate() {
                            self.text_object(f, &format!("{path}/fields/{i}"), any_text(2000));
                        }
                    }
                    Some(_) => self.err(&join(path, "fields"), "expected an array"),
                }
                let has_fields = b
                    .get("fields")
                    .and_then(Value::as_array)
                    .is_some_and(|f| !f.is_empty());
                if b.get("text").is_none() && !has_fields {
                    self.err(path, "must provide text or fields");
                }
                if let Some(acc) = b.get("accessory") {
                    self.element(acc, &join(path, "accessory"), Slot::Accessory);
                }
            }
            "header" => self.text_field(b, path, "text", plain(150), true),
            "image" => self.image(b, path),
            "actions" => self.element_list(b, path, 25, Slot::Actions),
            "context" => self.element_list(b, path, 10, Slot::Context),
            "context_actions" => self.element_list(b, path, 5, Slot::Actions),
            "input" => {
                self.text_field(b, path, "label", plain(2000), true);
                self.text_field(b, path, "hint", plain(2000), false);
                match b.get("element") {
                    None | Some(Value::Null) => self.missing(path, "element"),
                    Some(e) => self.element(e, &join(path, "element"), Slot::Input),
                }
            }
            "markdown" => self.string(b, path, "text", 12000, true),
            "file" => {
                self.string(b, path, "external_id", usize::MAX, true);
                self.string(b, path, "source", usize::MAX, true);
            }
            "call" => self.string(b, path, "call_id", usize::MAX, true),
            "video" => {
                self.string(b, path, "alt_text", usize::MAX, true);
                self.string(b, path, "video_url", usize::MAX, true);
                self.string(b, path, "thumbnail_url", usize::MAX, true);
                self.text_field(b, path, "title", plain(199), true);
                self.string(b, path, "author_name", 49, false);
            }
            "rich_text" if !b.get("elements").is_some_and(Value::is_array) => {
                self.missing(path, "elements");
            }
            "table"
                if b.get("rows")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty) =>
            {
                self.missing(path, "rows");
            }
            _ => {}
        }
    }

    /// An image block or image element (only blocks carry a `title`, which must be plain_text).
    fn image(&mut self, b: &Value, path: &str) {
        self.string(b, path, "alt_text", 2000, true);
        self.string(b, path, "image_url", 3000, false);
        if b.get("image_url").is_none() && b.get("slack_file").is_none() {
            self.missing(path, "image_url");
        }
        self.text_field(b, path, "title", plain(2000), false);
    }

    fn element_list(&mut self, b: &Value, path: &str, max: usize, slot: Slot) {
        let epath = join(path, "elements");
        match b.get("elements") {
            None | Some(Value::Null) => self.missing(path, "elements"),
            Some(Value::Array(els)) => {
                if els.is_empty() {
                    self.err(&epath, "must provide at least 1 items");
                }
                if els.len() > max {
                    self.err(
                        &epath,
                        format!("must provide at most {max} items (got {})", els.len()),
                    );
                }
                for (i, e) in els.iter().enumerate() {
                    self.element(e, &format!("{epath}/{i}"), slot);
                }
            }
            Some(_) => self.err(&epath, "expected an array"),
        }
    }
}
