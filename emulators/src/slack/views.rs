//! `views.open`, `views.push`, `views.update` and `views.publish` (App Home).

use serde_json::{Map, Value, json};

use super::api::{Outcome, fail, invalid, json_param, str_param};
use super::blockkit::validate_view;
use super::state::{APP_ID, BOT_ID, State, TEAM_ID};

pub(super) fn handle(st: &mut State, method: &str, params: &Map<String, Value>) -> Outcome {
    let view = json_param(params, "view", "invalid_arguments")?
        .ok_or_else(|| fail("invalid_arguments"))?;
    let trigger = str_param(params, "trigger_id");
    if method != "views.update" && trigger.is_none() {
        return Err(fail("invalid_arguments"));
    }
    let errors = validate_view(&view);
    if !errors.is_empty() {
        // Slack answers view violations with `invalid_arguments` (messages in response_metadata).
        return Err(invalid("invalid_arguments", st, method, errors));
    }
    if let (Some(trigger), false) = (trigger, method == "views.update") {
        use_trigger(st, trigger)?;
    }
    if method == "views.update" {
        return update(st, params, view);
    }
    let n = st.next();
    let id = format!("V{n:08}");
    let previous = if method == "views.push" {
        st.views.last().and_then(|v| v.get("id")).cloned()
    } else {
        None
    };
    let root = match &previous {
        Some(prev) => st
            .views
            .iter()
            .find(|v| v.get("id") == Some(prev))
            .and_then(|v| v.get("root_view_id"))
            .cloned()
            .unwrap_or_else(|| prev.clone()),
        None => Value::String(id.clone()),
    };
    let stored = stateful(view, &id, n, root, previous.unwrap_or(Value::Null));
    st.views.push(stored.clone());
    Ok(json!({ "view": stored }))
}

/// How long a trigger id opens a view for (Slack: 3 s).
const TRIGGER_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3);

/// A trigger id the emulator issued opens one view, within 3 s: later it is
/// `expired_trigger_id`, a second time `invalid_trigger_id` (Slack's errors). Ids a test made
/// up itself were never issued and are taken as fresh.
fn use_trigger(st: &mut State, trigger: &str) -> Result<(), super::api::Fail> {
    let Some((issued, used)) = st.triggers.get_mut(trigger) else {
        return Ok(());
    };
    if *used {
        return Err(fail("invalid_trigger_id"));
    }
    if issued.elapsed() > TRIGGER_LIFETIME {
        return Err(fail("expired_trigger_id"));
    }
    *used = true;
    Ok(())
}

/// `views.publish`: a `home` view for `user_id`, validated like any view; the newest one per
/// user is what their App Home shows.
pub(super) fn publish(st: &mut State, params: &Map<String, Value>) -> Outcome {
    let user = str_param(params, "user_id")
        .ok_or_else(|| fail("invalid_arguments"))?
        .to_string();
    let view = json_param(params, "view", "invalid_arguments")?
        .ok_or_else(|| fail("invalid_arguments"))?;
    if view.get("type").and_then(Value::as_str) != Some("home") {
        return Err(invalid(
            "invalid_arguments",
            st,
            "views.publish",
            vec!["views.publish takes a view of type home [json-pointer:/view/type]".into()],
        ));
    }
    let errors = validate_view(&view);
    if !errors.is_empty() {
        return Err(invalid("invalid_arguments", st, "views.publish", errors));
    }
    let n = st.next();
    let id = format!("V{n:08}");
    let stored = stateful(view, &id, n, Value::String(id.clone()), Value::Null);
    st.homes.push((user, stored.clone()));
    Ok(json!({ "view": stored }))
}

fn update(st: &mut State, params: &Map<String, Value>, view: Value) -> Outcome {
    let view_id = str_param(params, "view_id");
    let external_id = str_param(params, "external_id");
    if view_id.is_none() && external_id.is_none() {
        return Err(fail("invalid_arguments"));
    }
    let hash = str_param(params, "hash").map(str::to_string);
    let n = st.next();
    let existing = st
        .views
        .iter_mut()
        .find(|v| match (view_id, external_id) {
            (Some(id), _) => v.get("id").and_then(Value::as_str) == Some(id),
            (None, Some(ext)) => v.get("external_id").and_then(Value::as_str) == Some(ext),
            (None, None) => false,
        })
        .ok_or_else(|| fail("not_found"))?;
    if hash.is_some_and(|h| existing.get("hash").and_then(Value::as_str) != Some(h.as_str())) {
        return Err(fail("hash_conflict"));
    }
    let id = existing
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let root = existing.get("root_view_id").cloned().unwrap_or(Value::Null);
    let previous = existing
        .get("previous_view_id")
        .cloned()
        .unwrap_or(Value::Null);
    let stored = stateful(view, &id, n, root, previous);
    *existing = stored.clone();
    Ok(json!({ "view": stored }))
}

/// The view as Slack returns it: the submitted view plus id, hash, state and ownership fields.
fn stateful(view: Value, id: &str, n: u64, root: Value, previous: Value) -> Value {
    let mut map = match view {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    for key in ["private_metadata", "callback_id", "external_id"] {
        map.entry(key)
            .or_insert_with(|| Value::String(String::new()));
    }
    map.entry("clear_on_close").or_insert(Value::Bool(false));
    map.entry("notify_on_close").or_insert(Value::Bool(false));
    map.insert("id".into(), Value::String(id.to_string()));
    map.insert("team_id".into(), Value::String(TEAM_ID.into()));
    map.insert("app_id".into(), Value::String(APP_ID.into()));
    map.insert("bot_id".into(), Value::String(BOT_ID.into()));
    map.insert("hash".into(), Value::String(format!("1700000000.{n:08x}")));
    map.insert("state".into(), json!({ "values": {} }));
    map.insert("root_view_id".into(), root);
    map.insert("previous_view_id".into(), previous);
    Value::Object(map)
}
