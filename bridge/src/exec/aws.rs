//! `/aws`: the real AWS CLI as argv, with the profile alias's credentials from the bridge's
//! configuration (never from the user), and its JSON output as a compact table.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Map, Value};
use slipway_core::command::aws::Aws;
use slipway_infra::exec::ExecSpec;

pub use super::aws_role::AwsRole;
use super::creds::{MintedWork, Requester, RunCreds};
use super::reply::{Reply, code};
use super::work::{Shape, Work};
use crate::base::Base;

/// Widest table, in characters, before columns are left out.
const TABLE_WIDTH: usize = 100;
/// Widest cell.
const CELL_WIDTH: usize = 40;
/// Most columns shown.
const MAX_COLUMNS: usize = 8;

/// The environment that points the AWS CLI (or terraform) at a profile alias, and how the run
/// gets its credentials: a per-run session of the alias's read role, or else (the fallback) the
/// profile's static files.
pub fn env_for(state: &Base, alias: &str) -> Result<(Vec<(String, String)>, RunCreds), String> {
    let Some(p) = state.config.aws_profile(alias) else {
        return Err(format!(
            "AWS profile `{alias}` has no credentials configured in this bridge, so nothing was run; ask {}.",
            state.policy().support()
        ));
    };
    // Absolute: the CLI runs in the bridge's work directory.
    let abs = |f: &std::path::PathBuf| std::path::absolute(f).unwrap_or_else(|_| f.clone());
    let file = |f: Option<&std::path::PathBuf>| {
        f.map_or_else(|| "/dev/null".to_string(), |f| abs(f).display().to_string())
    };
    let mut env = vec![
        (
            "AWS_MAX_ATTEMPTS".into(),
            state.config.aws.max_attempts.to_string(),
        ),
        // Never the bridge host's own instance role.
        (
            slipway_infra::exec::NO_INSTANCE_METADATA.0.into(),
            slipway_infra::exec::NO_INSTANCE_METADATA.1.into(),
        ),
        ("AWS_PAGER".into(), String::new()),
    ];
    // Tests and emulators only, and only ever from the configuration.
    if let Some(url) = &p.endpoint_url {
        env.push(("AWS_ENDPOINT_URL".into(), url.clone()));
    }
    let creds = if let Some(role_arn) = &p.read_role_arn {
        // No file at all: the process has the session's environment and nothing else.
        env.extend([
            ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
        ]);
        RunCreds::AwsRole(role_of(alias, role_arn, &p))
    } else {
        env.extend([
            ("AWS_CONFIG_FILE".into(), file(p.config_file.as_ref())),
            (
                "AWS_SHARED_CREDENTIALS_FILE".into(),
                file(p.credentials_file.as_ref()),
            ),
            ("AWS_PROFILE".into(), p.profile.clone()),
        ]);
        if let Some(region) = &p.region {
            env.push(("AWS_DEFAULT_REGION".into(), region.clone()));
        }
        let what = format!("static credentials of profile `{}`", p.profile);
        RunCreds::Static(super::creds::AWS_DETAIL, what)
    };
    Ok((env, creds))
}

/// The read role of `alias`, signed for with profile `p`'s files (absolute: the bridge's work
/// directory is not the configuration's).
fn role_of(alias: &str, role_arn: &str, p: &crate::config::AwsProfileConfig) -> AwsRole {
    let abs = |f: &std::path::PathBuf| std::path::absolute(f).unwrap_or_else(|_| f.clone());
    let region = p
        .region
        .clone()
        .unwrap_or_else(|| slipway_infra::sts::DEFAULT_REGION.to_string());
    AwsRole {
        alias: alias.to_string(),
        role_arn: role_arn.to_string(),
        external_id: p.external_id.clone(),
        source: slipway_infra::sts::ProfileSource {
            profile: p.profile.clone(),
            config_file: p.config_file.as_ref().map(abs),
            credentials_file: p.credentials_file.as_ref().map(abs),
        },
        sts: slipway_infra::sts::StsSettings {
            region: Some(region.clone()),
            endpoint_url: p.endpoint_url.clone(),
            attempt_timeout: Some(std::time::Duration::from_secs(10)),
        },
        region,
    }
}

/// The process for an allowed `/aws` read.
pub fn work(state: &Base, aws: &Aws, timeout: Duration, output_cap: usize) -> Result<Work, String> {
    let mut env = super::env::base_env(state);
    let (profile_env, creds) = env_for(state, &aws.profile)?;
    env.extend(profile_env);
    let mut argv = aws.argv();
    if let Some(first) = argv.first_mut() {
        first.clone_from(&state.config.aws.cli);
    }
    Ok(Work::Minted(Box::new(MintedWork {
        spec: ExecSpec {
            argv,
            env,
            cwd: state.work_dir.clone(),
            timeout,
            output_cap,
            kill_grace: state.config.execution.kill_grace,
        },
        shape: Shape::Json,
        creds,
        requester: Requester::default(),
        access: super::sandbox::aws(&state.config, &aws.profile),
    })))
}

/// A table made from JSON output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// What the rows are, e.g. `Reservations › Instances`.
    pub label: String,
    /// Every column found, in display order.
    pub all_columns: usize,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

fn parse_json(text: &str) -> Option<Value> {
    if let Ok(v) = serde_json::from_str(text.trim()) {
        return Some(v);
    }
    // Warnings on stderr may come first: start at the first line that opens JSON.
    let start = text
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| text[i..].starts_with(['{', '[']))?;
    serde_json::from_str(text[start..].trim()).ok()
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        // gcloud names related resources by URL: the table shows the resource's own name.
        Value::String(s) if s.starts_with("https://www.googleapis.com/") => {
            Some(s.rsplit('/').next().unwrap_or(s).to_string())
        }
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

fn objects(v: &Value) -> Option<Vec<&Map<String, Value>>> {
    v.as_array()?.iter().map(Value::as_object).collect()
}

/// The one key of `obj` holding a list of objects (empty lists count only if nothing else does).
fn list_key(obj: &Map<String, Value>) -> Option<&str> {
    let lists: Vec<(&String, usize)> = obj
        .iter()
        .filter_map(|(k, v)| objects(v).map(|o| (k, o.len())))
        .collect();
    if let [(k, _)] = lists.as_slice() {
        return Some(k);
    }
    let full: Vec<_> = lists.iter().filter(|(_, n)| *n > 0).collect();
    match full.as_slice() {
        [(k, _)] => Some(k),
        _ => None,
    }
}

/// A row's cells: scalar fields, one level of `State.Name`-like fields, and the `Name` tag.
fn cells(obj: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in obj {
        if let Some(s) = scalar(v) {
            out.push((k.clone(), s));
        } else if let Value::Object(inner) = v {
            for (ik, iv) in inner {
                if matches!(ik.as_str(), "Name" | "State" | "Status" | "Value")
                    && let Some(s) = scalar(iv)
                {
                    out.push((format!("{k}.{ik}"), s));
                }
            }
        } else if k == "Tags"
            && let Some(tags) = objects(v)
            && let Some(name) = tags
                .iter()
                .find(|t| t.get("Key").and_then(Value::as_str) == Some("Name"))
                .and_then(|t| t.get("Value").and_then(scalar))
        {
            out.push(("Tag:Name".into(), name));
        }
    }
    out
}

/// Lower ranks are shown first and kept when space runs out.
fn rank(key: &str, singular: &str) -> u8 {
    let primary = [
        format!("{singular}Id"),
        format!("{singular}Name"),
        format!("{singular}Arn"),
    ];
    // AWS's keys are PascalCase, gcloud's camelCase.
    if primary.iter().any(|p| p == key)
        || matches!(key, "Name" | "Tag:Name" | "Id" | "Arn" | "name")
    {
        0
    } else if key.split('.').next().is_some_and(|k| {
        k.ends_with("State") || k.ends_with("Status") || k == "status" || k == "state"
    }) {
        1
    } else if matches!(key, "zone" | "region" | "location" | "machineType") {
        2
    } else if key.contains('.') {
        4
    } else if key.ends_with("Type")
        || (key.ends_with("Name") && !key.contains("Dns"))
        || (key.ends_with("Id") && !key.contains("Owner") && !key.contains("Client"))
    {
        2
    } else if key.contains("Time") || key.contains("Date") {
        3
    } else {
        4
    }
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn cut(s: &str, w: usize) -> String {
    if width(s) <= w {
        return s.to_string();
    }
    let mut out: String = s.chars().take(w.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn table_of(label: String, items: &[&Map<String, Value>]) -> Table {
    let singular = label
        .rsplit(' ')
        .next()
        .unwrap_or("")
        .trim_end_matches('s')
        .to_string();
    let rows: Vec<Vec<(String, String)>> = items.iter().map(|o| cells(o)).collect();
    let mut keys: Vec<String> = Vec::new();
    for row in &rows {
        for (k, v) in row {
            if !v.is_empty() && !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    let all_columns = keys.len();
    keys.sort_by_key(|k| rank(k, &singular));
    let mut columns = Vec::new();
    let mut used = 0;
    for k in keys {
        let w = rows
            .iter()
            .filter_map(|r| r.iter().find(|(rk, _)| *rk == k).map(|(_, v)| width(v)))
            .chain([width(&k)])
            .max()
            .unwrap_or(0)
            .min(CELL_WIDTH);
        let extra = if columns.is_empty() { w } else { w + 2 };
        if columns.len() < MAX_COLUMNS && used + extra <= TABLE_WIDTH {
            used += extra;
            columns.push(k);
        }
    }
    let rows = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| {
                    r.iter()
                        .find(|(k, _)| k == c)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    Table {
        label,
        all_columns,
        columns,
        rows,
    }
}

/// A table for JSON output, when its shape allows one: a list of objects (possibly one level
/// down, like `Reservations › Instances`), a list of strings, or one flat object.
pub fn json_table(text: &str) -> Option<Table> {
    let root = parse_json(text)?;
    let mut label = String::new();
    let mut value = &root;
    if let Value::Object(obj) = value {
        if let Some(k) = list_key(obj) {
            k.clone_into(&mut label);
            value = &obj[k];
        } else if let Some((k, strings)) = obj.iter().find_map(|(k, v)| {
            let a = v.as_array()?;
            a.iter()
                .map(|s| s.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .map(|s| (k, s))
        }) && obj.len() == 1
        {
            return Some(Table {
                label: k.clone(),
                all_columns: 1,
                columns: vec![k.clone()],
                rows: strings.into_iter().map(|s| vec![s]).collect(),
            });
        } else {
            let rows: Vec<Vec<String>> = cells(obj).into_iter().map(|(k, v)| vec![k, v]).collect();
            if rows.is_empty() {
                return None;
            }
            return Some(Table {
                label: "Fields".into(),
                all_columns: 2,
                columns: vec!["Field".into(), "Value".into()],
                rows,
            });
        }
    }
    let items = objects(value)?;
    // `Reservations` hold `Instances`: show the inner objects when every item has one list.
    let inner: Option<Vec<&str>> = items.iter().map(|o| list_key(o)).collect();
    if let Some(keys) = inner
        && let Some(first) = keys.first()
        && keys.iter().all(|k| k == first)
    {
        let flat: Vec<&Map<String, Value>> = items
            .iter()
            .filter_map(|o| objects(&o[*first]))
            .flatten()
            .collect();
        let label = if label.is_empty() {
            (*first).to_string()
        } else {
            format!("{label} › {first}")
        };
        return Some(table_of(label, &flat));
    }
    if label.is_empty() {
        label = "Items".into();
    }
    Some(table_of(label, &items))
}

impl Table {
    /// The table as aligned text, with as many rows as fit `budget`; and how many rows that is.
    pub fn text(&self, budget: usize) -> (String, usize) {
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                self.rows
                    .iter()
                    .map(|r| width(&r[i]))
                    .chain([width(c)])
                    .max()
                    .unwrap_or(0)
                    .min(if self.columns.len() == 2 && i == 1 {
                        TABLE_WIDTH
                    } else {
                        CELL_WIDTH
                    })
            })
            .collect();
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                let c = cut(c, *w);
                if i + 1 == cells.len() {
                    out.push_str(&c);
                } else {
                    let _ = write!(out, "{c:<w$}  ");
                }
            }
            out.trim_end().to_string()
        };
        let mut text = line(&self.columns);
        let mut shown = 0;
        for row in &self.rows {
            let l = line(row);
            // Room for the code fence around it.
            if width(&text) + width(&l) + 1 > budget.saturating_sub(10) {
                break;
            }
            text.push('\n');
            text.push_str(&l);
            shown += 1;
        }
        (text, shown)
    }
}

/// The thread reply for JSON output as a table, or `None` when the output has no table shape.
pub fn table_reply(
    output: &str,
    budget: usize,
    digest: &str,
    audit_id: Option<&str>,
) -> Option<Reply> {
    let table = json_table(output)?;
    let total = table.rows.len();
    if total == 0 {
        return Some(Reply {
            headline: format!("*{}*: none", table.label),
            context: digest.to_string(),
            fallback: format!("{}: none", table.label),
            ..Reply::default()
        });
    }
    let (text, shown) = table.text(budget);
    let mut left_out = Vec::new();
    if shown < total {
        left_out.push(format!("showing {shown} of {total} rows"));
    }
    if table.columns.len() < table.all_columns {
        left_out.push(format!(
            "{} of {} fields",
            table.columns.len(),
            table.all_columns
        ));
    }
    let note = if left_out.is_empty() {
        String::new()
    } else {
        format!(
            "{}: the full redacted JSON is kept with the audit record{}.",
            left_out.join(", "),
            audit_id.map(|id| format!(" `{id}`")).unwrap_or_default()
        )
    };
    let noun = if total == 1 { "row" } else { "rows" };
    Some(Reply {
        headline: format!("*{}* ({total} {noun})", table.label),
        context: digest.to_string(),
        output: code(&text),
        note,
        fallback: format!("{}: {total} {noun}", table.label),
        ..Reply::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSTANCES: &str = r#"{"Reservations": [{"ReservationId": "r-1", "OwnerId": "1234", "Groups": [],
      "Instances": [{"InstanceId": "i-0abc", "ImageId": "ami-1", "InstanceType": "t3.micro",
        "State": {"Code": 16, "Name": "running"}, "LaunchTime": "2026-01-01T00:00:00Z",
        "ClientToken": "tok", "BlockDeviceMappings": [{"DeviceName": "/dev/sda1"}],
        "Tags": [{"Key": "Name", "Value": "web-1"}, {"Key": "team", "Value": "x"}]}]},
      {"ReservationId": "r-2", "OwnerId": "1234", "Groups": [],
      "Instances": [{"InstanceId": "i-0def", "InstanceType": "t3.large", "State": {"Code": 80, "Name": "stopped"}}]}]}"#;

    #[test]
    fn reservations_become_a_table_of_instances() {
        let t = json_table(INSTANCES).unwrap();
        assert_eq!(t.label, "Reservations › Instances");
        assert_eq!(t.rows.len(), 2);
        assert_eq!(&t.columns[..2], ["InstanceId", "Tag:Name"]);
        assert_eq!(t.columns[2], "State.Name");
        let (text, shown) = t.text(2900);
        assert_eq!(shown, 2);
        assert!(
            text.contains("i-0abc") && text.contains("stopped"),
            "{text}"
        );
        assert!(text.lines().all(|l| l.chars().count() <= TABLE_WIDTH + 2));
    }

    #[test]
    fn lists_objects_and_strings() {
        let t = json_table(
            r#"{"Buckets": [{"Name": "a", "CreationDate": "d"}], "Owner": {"ID": "x"}, "Prefix": null}"#,
        )
        .unwrap();
        assert_eq!((t.label.as_str(), t.columns.len()), ("Buckets", 2));
        assert_eq!(t.columns[0], "Name");
        let t = json_table(r#"{"UserId": "AIDA", "Account": "123", "Arn": "arn:aws:sts::123:x"}"#)
            .unwrap();
        assert_eq!(t.columns, ["Field", "Value"]);
        assert!(
            t.rows
                .contains(&vec!["Account".to_string(), "123".to_string()])
        );
        let t = json_table(r#"{"QueueUrls": ["u1", "u2"]}"#).unwrap();
        assert_eq!(t.rows.len(), 2);
        let t = json_table(r#"{"Reservations": []}"#).unwrap();
        assert!(t.rows.is_empty());
        assert!(json_table("not json").is_none());
        assert!(json_table("[1, 2]").is_none());
        let t = json_table("warning: something\n{\"Buckets\": []}").unwrap();
        assert_eq!(t.label, "Buckets");
    }

    #[test]
    fn long_tables_fit_the_budget_with_a_note() {
        let items: Vec<String> = (0..500)
            .map(|i| format!(r#"{{"Name": "bucket-{i:04}", "CreationDate": "2026-01-01"}}"#))
            .collect();
        let json = format!(r#"{{"Buckets": [{}]}}"#, items.join(","));
        let reply = table_reply(&json, 2900, "d", Some("evt-1")).unwrap();
        assert!(reply.output.chars().count() <= 2900);
        assert!(reply.note.contains("of 500 rows") && reply.note.contains("evt-1"));
        let wide: Vec<String> = (0..30)
            .map(|i| format!(r#""Field{i}Id": "{}""#, "x".repeat(30)))
            .collect();
        let json = format!(r#"{{"Things": [{{{}}}]}}"#, wide.join(","));
        let reply = table_reply(&json, 2900, "d", None).unwrap();
        assert!(reply.note.contains("of 30 fields"), "{}", reply.note);
    }
}
