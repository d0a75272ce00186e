//! Element-level checks: buttons, selects, options, confirmation dialogs, inputs.

use serde_json::Value;

use super::{INPUT_ELEMENTS, TextRule, Validator, any_text, is_interactive, join, plain};

/// Where an element sits, which decides what kinds of element are allowed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Actions,
    Context,
    Accessory,
    Input,
}

impl Validator {
    pub(super) fn element(&mut self, e: &Value, path: &str, slot: Slot) {
        if !e.is_object() {
            self.err(path, "expected an element object");
            return;
        }
        let Some(kind) = e.get("type").and_then(Value::as_str) else {
            self.missing(path, "type");
            return;
        };
        let text_like = matches!(kind, "plain_text" | "mrkdwn");
        let allowed = match slot {
            Slot::Context => kind == "image" || text_like,
            Slot::Input => INPUT_ELEMENTS.contains(&kind),
            Slot::Actions => is_interactive(kind),
            Slot::Accessory => is_interactive(kind) || kind == "image",
        };
        if !allowed {
            let known = is_interactive(kind) || kind == "image" || text_like;
            let msg = if known {
                format!("element type {kind} is not allowed here")
            } else {
                format!("unsupported element type: {kind}")
            };
            self.err(&join(path, "type"), msg);
            return;
        }
        if text_like {
            self.text_object(e, path, any_text(3000));
            return;
        }
        if kind == "image" {
            self.image(e, path);
            return;
        }
        self.string(e, path, "action_id", 255, false);
        if INPUT_ELEMENTS.contains(&kind) {
            self.text_field(e, path, "placeholder", plain(150), false);
        }
        if let Some(c) = e.get("confirm") {
            self.confirm(c, &join(path, "confirm"));
        }
        match kind {
            "button" => {
                self.text_field(e, path, "text", plain(75), true);
                self.string(e, path, "value", 2000, false);
                self.string(e, path, "url", 3000, false);
                self.string(e, path, "accessibility_label", 75, false);
                self.style(e, path);
            }
            "static_select" | "multi_static_select" => {
                let has_opts = e.get("options").is_some();
                let has_groups = e.get("option_groups").is_some();
                if has_opts && has_groups {
                    self.err(path, "options and option_groups cannot both be specified");
                } else if !has_opts && !has_groups {
                    self.missing(path, "options");
                }
                self.options(e, path, "options", 100, 0, true);
                if let Some(groups) = e.get("option_groups") {
                    self.option_groups(groups, &join(path, "option_groups"));
                }
                self.initial_options(e, path, true);
            }
            "overflow" => self.options(e, path, "options", 5, 1, false),
            "checkboxes" | "radio_buttons" => {
                if e.get("options").is_none() {
                    self.missing(path, "options");
                }
                self.options(e, path, "options", 10, 1, false);
                self.initial_options(e, path, false);
            }
            "external_select" | "multi_external_select" => self.initial_options(e, path, true),
            "plain_text_input" => {
                for key in ["min_length", "max_length"] {
                    if e.get(key)
                        .is_some_and(|n| n.as_u64().is_none_or(|n| n > 3000))
                    {
                        self.err(&join(path, key), "must be an integer between 0 and 3000");
                    }
                }
            }
            "datepicker" => {
                if let Some(d) = e.get("initial_date") {
                    let ok = d
                        .as_str()
                        .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok());
                    if !ok {
                        self.err(&join(path, "initial_date"), "must be in format YYYY-MM-DD");
                    }
                }
            }
            "timepicker" => {
                if let Some(t) = e.get("initial_time") {
                    let ok = t.as_str().is_some_and(|s| {
                        s.len() == 5 && chrono::NaiveTime::parse_from_str(s, "%H:%M").is_ok()
                    });
                    if !ok {
                        self.err(&join(path, "initial_time"), "must be in format HH:mm");
                    }
                }
            }
            "workflow_button" => {
                self.text_field(e, path, "text", plain(75), true);
                self.style(e, path);
            }
            _ => {}
        }
    }

    fn style(&mut self, e: &Value, path: &str) {
        if e.get("style")
            .is_some_and(|s| !matches!(s.as_str(), Some("primary" | "danger")))
        {
            self.err(&join(path, "style"), "must be one of: primary, danger");
        }
    }

    fn confirm(&mut self, c: &Value, path: &str) {
        if !c.is_object() {
            self.err(path, "expected a confirmation dialog object");
            return;
        }
        self.text_field(c, path, "title", plain(100), true);
        self.text_field(c, path, "text", any_text(300), true);
        self.text_field(c, path, "confirm", plain(30), true);
        self.text_field(c, path, "deny", plain(30), true);
        self.style(c, path);
    }

    fn options(
        &mut self,
        e: &Value,
        path: &str,
        key: &str,
        max: usize,
        min: usize,
        plain_only: bool,
    ) {
        let opath = join(path, key);
        match e.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(opts)) => {
                if opts.len() < min {
                    self.err(&opath, format!("must provide at least {min} items"));
                }
                if opts.len() > max {
                    self.err(
                        &opath,
                        format!("must provide at most {max} items (got {})", opts.len()),
                    );
                }
                for (i, o) in opts.iter().enumerate() {
                    self.option(o, &format!("{opath}/{i}"), plain_only);
                }
            }
            Some(_) => self.err(&opath, "expected an array"),
        }
    }

    fn option(&mut self, o: &Value, path: &str, plain_only: bool) {
        if !o.is_object() {
            self.err(path, "expected an option object");
            return;
        }
        let rule = TextRule {
            plain_only,
            max: 75,
        };
        self.text_field(o, path, "text", rule, true);
        self.string(o, path, "value", 150, true);
        self.text_field(o, path, "description", plain(75), false);
        self.string(o, path, "url", 3000, false);
    }

    fn option_groups(&mut self, groups: &Value, path: &str) {
        let Some(list) = groups.as_array() else {
            self.err(path, "expected an array");
            return;
        };
        if list.len() > 100 {
            self.err(
                path,
                format!("must provide at most 100 items (got {})", list.len()),
            );
        }
        for (i, g) in list.iter().enumerate() {
            let gpath = format!("{path}/{i}");
            if !g.is_object() {
                self.err(&gpath, "expected an option group object");
                continue;
            }
            self.text_field(g, &gpath, "label", plain(75), true);
            if g.get("options").is_none() {
                self.missing(&gpath, "options");
            }
            self.options(g, &gpath, "options", 100, 1, true);
        }
    }

    fn initial_options(&mut self, e: &Value, path: &str, plain_only: bool) {
        if let Some(o) = e.get("initial_option") {
            self.option(o, &join(path, "initial_option"), plain_only);
        }
        if let Some(list) = e.get("initial_options") {
            match list.as_array() {
                Some(list) => {
                    for (i, o) in list.iter().enumerate() {
                        self.option(o, &format!("{path}/initial_options/{i}"), plain_only);
                    }
                }
                None => self.err(&join(path, "initial_options"), "expected an array"),
            }
        }
    }
}
