//! Change windows (`freezes:`): when a window is in force, change requests on the resources it
//! covers are refused, and their merges are not executed, unless someone the window names
//! overrides it with a reason. Evaluation is pure: the caller passes the time.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use super::compile::{Policy, PolicyError, patterns};
use super::model::{Freeze, Name, Weekly};
use super::patterns::{AllNamespaces, PatternIndex, ResourceKey};

/// The longest override reason kept, in characters.
pub const MAX_OVERRIDE_REASON: usize = 200;

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

/// When a window is in force.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Schedule {
    /// On each day of `days` (a bit per weekday, Monday first), from `from` to `to` minutes
    /// after local midnight, in `tz`'s wall-clock time.
    Weekly {
        days: u8,
        from: u32,
        to: u32,
        tz: Tz,
    },
    /// From `from` (inclusive) to `to` (exclusive).
    Fixed {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
}

/// A compiled freeze window.
#[derive(Debug)]
pub struct Window {
    pub name: String,
    /// Shown to the people refused.
    pub reason: String,
    schedule: Schedule,
    protected: bool,
    override_groups: Vec<String>,
    override_roles: Vec<usize>,
    /// Who may override, for messages: `groups platform-owners; roles owner`.
    overriders: String,
}

/// A window in force over a resource, and when it ends.
#[derive(Debug, Clone)]
pub struct Frozen<'a> {
    pub window: &'a Window,
    pub ends_at: DateTime<Utc>,
    /// The resource it covers (the first of those judged).
    pub resource: String,
}

/// What the freeze windows say about one change at one moment.
#[derive(Debug, Clone)]
pub enum FreezeCheck<'a> {
    /// No window in force covers the resource.
    Open,
    /// Windows are in force, and each is overridden by someone it names.
    Overridden(Vec<Frozen<'a>>),
    /// A window in force, not overridden.
    Frozen(Frozen<'a>),
    /// A window in force, overridden by someone it doesn't name.
    NotAllowed(Frozen<'a>),
}

/// The compiled `freezes` section.
#[derive(Debug)]
pub(crate) struct Windows {
    list: Vec<Window>,
    index: PatternIndex,
}

impl Windows {
    pub(crate) fn compile(
        freezes: &[Freeze],
        role_index: &HashMap<String, usize>,
    ) -> Result<Windows, PolicyError> {
        let mut list: Vec<Window> = Vec::new();
        let mut items = Vec::new();
        for f in freezes {
            if f.name.value.is_empty() || f.name.value.contains(char::is_whitespace) {
                return Err(PolicyError::at(
                    &f.name,
                    "freeze names must be non-empty and contain no spaces",
                ));
            }
            if list.iter().any(|w| w.name == f.name.value) {
                return Err(PolicyError::at(
                    &f.name,
                    format!("freeze `{}` is defined twice", f.name.value),
                ));
            }
            if !f.protected && f.resources.is_empty() {
                return Err(PolicyError::at(
                    &f.name,
                    format!(
                        "freeze `{}` covers nothing: set `protected: true` or list `resources`",
                        f.name.value
                    ),
                ));
            }
            patterns(&f.resources)?;
            let idx = u32::try_from(list.len()).unwrap_or(u32::MAX);
            items.extend(f.resources.iter().map(|r| (idx, r.value.clone())));
            list.push(window(f, role_index)?);
        }
        let index = PatternIndex::build(
            items.iter().map(|(i, p)| (*i, p.as_str())),
            AllNamespaces::AnyNamespace,
        )
        .map_err(|e| PolicyError {
            line: 0,
            column: 0,
            message: format!("freezes: {e}"),
        })?;
        Ok(Windows { list, index })
    }
}

fn window(f: &Freeze, role_index: &HashMap<String, usize>) -> Result<Window, PolicyError> {
    let schedule = match (&f.weekly, &f.from, &f.to) {
        (Some(w), None, None) => weekly(w)?,
        (None, Some(from), Some(to)) => fixed(from, to)?,
        _ => {
            return Err(PolicyError::at(
                &f.name,
                format!(
                    "freeze `{}` needs either `weekly` or both `from` and `to` (RFC 3339 times)",
                    f.name.value
                ),
            ));
        }
    };
    let mut override_roles = Vec::new();
    for r in &f.overriders.roles {
        let Some(&i) = role_index.get(&r.value) else {
            return Err(PolicyError::at(r, format!("unknown role `{}`", r.value)));
        };
        override_roles.push(i);
    }
    let override_groups: Vec<String> = f
        .overriders
        .groups
        .iter()
        .map(|g| g.value.clone())
        .collect();
    let roles: Vec<&str> = f
        .overriders
        .roles
        .iter()
        .map(|r| r.value.as_str())
        .collect();
    let overriders = match (override_groups.is_empty(), roles.is_empty()) {
        (true, true) => "nobody".to_string(),
        (false, true) => format!("members of {}", override_groups.join(", ")),
        (true, false) => format!("holders of role {}", roles.join(", ")),
        (false, false) => format!(
            "members of {} and holders of role {}",
            override_groups.join(", "),
            roles.join(", ")
        ),
    };
    Ok(Window {
        name: f.name.value.clone(),
        reason: f.reason.clone(),
        schedule,
        protected: f.protected,
        override_groups,
        override_roles,
        overriders,
    })
}

fn weekly(w: &Weekly) -> Result<Schedule, PolicyError> {
    let mut days = 0u8;
    for d in &w.days {
        let Some(i) = DAYS
            .iter()
            .position(|(n, _)| d.value.eq_ignore_ascii_case(n))
        else {
            return Err(PolicyError::at(
                d,
                format!(
                    "unknown day `{}`; use mon, tue, wed, thu, fri, sat or sun",
                    d.value
                ),
            ));
        };
        days |= 1 << i;
    }
    if days == 0 {
        return Err(PolicyError::at(
            &w.from,
            "a weekly freeze needs at least one day",
        ));
    }
    let (from, to) = (clock_time(&w.from)?, clock_time(&w.to)?);
    if to <= from {
        return Err(PolicyError::at(
            &w.to,
            format!(
                "the freeze ends at {} but starts at {}: `to` must be later than `from` on the same day (split a window that crosses midnight in two)",
                w.to.value, w.from.value
            ),
        ));
    }
    let tz = match &w.timezone {
        None => Tz::UTC,
        Some(n) => n.value.parse::<Tz>().map_err(|_| {
            PolicyError::at(
                n,
                format!(
                    "unknown time zone `{}`; use an IANA name such as `Europe/Berlin` or `UTC`",
                    n.value
                ),
            )
        })?,
    };
    Ok(Schedule::Weekly { days, from, to, tz })
}

/// `HH:MM` (or `24:00`) as minutes after midnight.
fn clock_time(n: &Name) -> Result<u32, PolicyError> {
    let bad = || {
        PolicyError::at(
            n,
            format!(
                "`{}` is not a time of day; write `HH:MM`, from `00:00` to `24:00`",
                n.value
            ),
        )
    };
    let (h, m) = n.value.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn fixed(from: &Name, to: &Name) -> Result<Schedule, PolicyError> {
    let at = |n: &Name| {
        DateTime::parse_from_rfc3339(&n.value)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                PolicyError::at(
                    n,
                    format!(
                        "`{}` is not an RFC 3339 time ({e}); write for example `2026-12-24T00:00:00+01:00`",
                        n.value
                    ),
                )
            })
    };
    let (start, end) = (at(from)?, at(to)?);
    if end <= start {
        return Err(PolicyError::at(
            to,
            format!(
                "the freeze ends at {} but starts at {}: `to` must be later than `from`",
                to.value, from.value
            ),
        ));
    }
    Ok(Schedule::Fixed {
        from: start,
        to: end,
    })
}

impl Schedule {
    /// When the window ends, if it is in force at `now`.
    fn ends(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match *self {
            Schedule::Fixed { from, to } => (from <= now && now < to).then_some(to),
            Schedule::Weekly { days, from, to, tz } => {
                let local = now.with_timezone(&tz);
                let minute = local.hour() * 60 + local.minute();
                let today = day_bit(local.weekday());
                (days & today != 0 && from <= minute && minute < to)
                    .then(|| weekly_end(local.date_naive(), days, from, to, tz, now))
            }
        }
    }
}

fn day_bit(d: Weekday) -> u8 {
    1 << d.num_days_from_monday()
}

/// The end of a weekly window in force on `date`: its `to` that day, or later when it runs to
/// midnight and the next day's starts there (`fri, sat` from `00:00` to `24:00`).
fn weekly_end(
    mut date: NaiveDate,
    days: u8,
    from: u32,
    to: u32,
    tz: Tz,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    for _ in 0..7 {
        let Some(next) = date.succ_opt() else { break };
        if to == 24 * 60 && from == 0 && days & day_bit(next.weekday()) != 0 {
            date = next;
        } else {
            break;
        }
    }
    let end = date.and_time(NaiveTime::MIN) + chrono::Duration::minutes(i64::from(to));
    // A wall-clock time a DST change skips is taken an hour later.
    [end, end + chrono::Duration::hours(1)]
        .iter()
        .find_map(|t| tz.from_local_datetime(t).earliest())
        .map_or(now, |t| t.with_timezone(&Utc))
}

impl Window {
    /// Whether someone in `groups` may override this window.
    fn may_override(&self, policy: &Policy, groups: &[String]) -> bool {
        groups.iter().any(|g| {
            self.override_groups.contains(g)
                || policy
                    .group_roles
                    .get(g)
                    .is_some_and(|roles| roles.iter().any(|r| self.override_roles.contains(r)))
        })
    }
}

impl Frozen<'_> {
    /// The refusal a requester reads: which window, why, until when, and who may override.
    pub fn refusal(&self) -> String {
        format!(
            "changes to `{}` are frozen by window `{}` until {}: {}. Only {} may override it, by adding `--override-freeze \"<reason>\"` to the command.",
            self.resource,
            self.window.name,
            self.ends_at.format("%Y-%m-%d %H:%M UTC"),
            self.window.reason,
            self.window.overriders
        )
    }

    /// The refusal of an override by someone the window doesn't name.
    pub fn not_allowed(&self) -> String {
        format!(
            "changes to `{}` are frozen by window `{}` until {}: {}. You may not override it: only {} may.",
            self.resource,
            self.window.name,
            self.ends_at.format("%Y-%m-%d %H:%M UTC"),
            self.window.reason,
            self.window.overriders
        )
    }
}

impl Policy {
    /// Every freeze window in force at `now` that covers `resource` (a decided resource string,
    /// `service:api/production`), in file order.
    pub fn freezes_at(&self, resource: &str, now: DateTime<Utc>) -> Vec<Frozen<'_>> {
        let w = &self.freezes;
        if w.list.is_empty() {
            return Vec::new();
        }
        let key = ResourceKey::of(resource.to_string());
        let protected = !self.protected_index.all(&key).is_empty();
        let by_pattern = w.index.all(&key);
        w.list
            .iter()
            .zip(0u32..)
            .filter(|(win, i)| (win.protected && protected) || by_pattern.contains(i))
            .filter_map(|(window, _)| {
                window.schedule.ends(now).map(|ends_at| Frozen {
                    window,
                    ends_at,
                    resource: resource.to_string(),
                })
            })
            .collect()
    }

    /// Judge a change to `resources` (the request's, and those of a manifest's objects) at
    /// `now` by someone in `groups`: `overrides` says which windows (by name) the change
    /// carries an override of. Each window in force counts once.
    pub fn check_freeze(
        &self,
        resources: &[String],
        now: DateTime<Utc>,
        groups: &[String],
        overrides: impl Fn(&str) -> bool,
    ) -> FreezeCheck<'_> {
        let mut frozen: Vec<Frozen<'_>> = Vec::new();
        for f in resources.iter().flat_map(|r| self.freezes_at(r, now)) {
            if frozen.iter().any(|g| g.window.name == f.window.name) {
                continue;
            }
            if !overrides(&f.window.name) {
                return FreezeCheck::Frozen(f);
            }
            if !f.window.may_override(self, groups) {
                return FreezeCheck::NotAllowed(f);
            }
            frozen.push(f);
        }
        if frozen.is_empty() {
            FreezeCheck::Open
        } else {
            FreezeCheck::Overridden(frozen)
        }
    }

    /// [`Policy::check_freeze`] for a signed change request at `now` (and the resources of its
    /// manifest's `objects`, when known): only the windows its override names are overridden,
    /// and only if its requester's groups may override them.
    pub fn check_change_freeze(
        &self,
        cr: &crate::change::ChangeRequest,
        objects: &[String],
        now: DateTime<Utc>,
    ) -> FreezeCheck<'_> {
        let overridden = |name: &str| {
            cr.freeze_override
                .as_ref()
                .is_some_and(|o| o.windows.iter().any(|w| w == name))
        };
        let mut resources = vec![cr.resource.clone()];
        resources.extend(objects.iter().cloned());
        self.check_freeze(&resources, now, &cr.requester.groups, overridden)
    }
}

#[cfg(test)]
mod tests;
