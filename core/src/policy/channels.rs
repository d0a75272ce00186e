//! The `channels` section: where commands on a resource may be run, and who sees their output.
//! Read output on protected resources is ephemeral (only the requester sees it, with a Share
//! button) unless an entry says otherwise; the first matching entry that sets `output` decides.
//! Scoping is a restriction, so it combines: every matching entry that sets `only_in` or
//! `direct_messages: false` must allow the channel.

use super::compile::PolicyError;
use super::model::{ChannelRule, Visibility};
use super::patterns::{AllNamespaces, PatternIndex, ResourceKey};
use crate::command::Family;

/// One compiled entry.
#[derive(Debug)]
struct Entry {
    id: String,
    families: u8,
    output: Option<Visibility>,
    only_in: Vec<String>,
    direct_messages: bool,
}

/// The compiled `channels` section.
#[derive(Debug)]
pub(crate) struct Channels {
    entries: Vec<Entry>,
    /// For output, as for permissions: an entry for one namespace doesn't speak for `-A`.
    index: PatternIndex,
    /// For scoping, as for restrictions: an `-A` request touches every namespace entry of its
    /// cluster.
    restricting: PatternIndex,
}

/// A command refused where it was typed: the entry that refused it, and the sentence to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRefusal {
    /// `channels.<entry id>`.
    pub rule: String,
    pub reason: String,
}

/// Slack's IDs: `C…` channels (public and private), `G…` older private channels and group DMs.
/// `D…` (a direct message) is refused: a DM can't be listed, only allowed as a kind.
fn check_channel_id(n: &super::model::Name) -> Result<(), PolicyError> {
    let v = &n.value;
    let ok = v.len() >= 9
        && v.len() <= 20
        && (v.starts_with('C') || v.starts_with('G'))
        && v.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if ok {
        return Ok(());
    }
    Err(PolicyError::at(
        n,
        format!(
            "channels: `{v}` is not a Slack channel ID; use the ID (C… or G…, from the channel's \
             details), not its name"
        ),
    ))
}

/// A direct message, by its ID. Group DMs have `C`/`G` IDs like channels: `only_in` keeps
/// commands out of them, `direct_messages: false` alone doesn't.
pub fn is_direct_message(channel: &str) -> bool {
    channel.starts_with('D')
}

impl Channels {
    pub(crate) fn compile(
        rules: &[ChannelRule],
        families: impl Fn(&[super::model::Name]) -> Result<u8, PolicyError>,
        patterns: impl Fn(&[super::model::Name]) -> Result<(), PolicyError>,
    ) -> Result<Channels, PolicyError> {
        let mut entries = Vec::new();
        let mut items = Vec::new();
        for r in rules {
            patterns(&r.resources)?;
            r.only_in.iter().try_for_each(check_channel_id)?;
            if r.output.is_none() && r.only_in.is_empty() && r.direct_messages {
                return Err(PolicyError::at(
                    &r.id,
                    format!(
                        "channels entry `{}` sets nothing: give it `output`, `only_in` or \
                         `direct_messages: false`",
                        r.id.value
                    ),
                ));
            }
            let mask = if r.commands.is_empty() {
                u8::MAX
            } else {
                families(&r.commands)?
            };
            let idx = u32::try_from(entries.len()).unwrap_or(u32::MAX);
            items.extend(r.resources.iter().map(|p| (idx, p.value.clone())));
            entries.push(Entry {
                id: r.id.value.clone(),
                families: mask,
                output: r.output,
                only_in: r.only_in.iter().map(|c| c.value.clone()).collect(),
                direct_messages: r.direct_messages,
            });
        }
        let build = |mode| {
            PatternIndex::build(items.iter().map(|(i, p)| (*i, p.as_str())), mode).map_err(|e| {
                PolicyError {
                    line: 0,
                    column: 0,
                    message: format!("channels: {e}"),
                }
            })
        };
        Ok(Channels {
            entries,
            index: build(AllNamespaces::NeedsStar)?,
            restricting: build(AllNamespaces::AnyNamespace)?,
        })
    }

    /// The entries of `index` that match `family` on `key`, in the policy's order.
    fn matching<'a>(
        &'a self,
        index: &PatternIndex,
        key: &ResourceKey,
        family: Family,
    ) -> impl Iterator<Item = &'a Entry> {
        index
            .all(key)
            .into_iter()
            .map(|i| &self.entries[i as usize])
            .filter(move |e| e.families & family.bit() != 0)
    }

    /// The visibility of `family`'s output on `key`: the first matching entry's that sets one,
    /// else ephemeral when the resource is protected, else the channel.
    pub(crate) fn visibility(
        &self,
        key: &ResourceKey,
        family: Family,
        protected: bool,
    ) -> Visibility {
        self.matching(&self.index, key, family)
            .find_map(|e| e.output)
            .unwrap_or(if protected {
                Visibility::Ephemeral
            } else {
                Visibility::Channel
            })
    }

    /// Why `family` on `key` may not be run in `channel` (empty: no channel, as from a global
    /// shortcut), if it may not.
    pub(crate) fn refusal(
        &self,
        key: &ResourceKey,
        family: Family,
        channel: &str,
    ) -> Option<ChannelRefusal> {
        self.matching(&self.restricting, key, family)
            .find(|e| !allows(e, channel))
            .map(|e| refusal_of(e, family, &key.full, channel))
    }
}

/// Whether `e` lets its commands run in `channel`. No channel (a global shortcut's modal) is
/// nowhere in particular: refused wherever an entry scopes.
fn allows(e: &Entry, channel: &str) -> bool {
    if !e.only_in.is_empty() {
        return e.only_in.iter().any(|c| c == channel);
    }
    e.direct_messages || !(channel.is_empty() || is_direct_message(channel))
}

fn refusal_of(e: &Entry, family: Family, resource: &str, channel: &str) -> ChannelRefusal {
    let what = format!("`{}` on `{resource}`", family.as_str());
    let here = if channel.is_empty() {
        "from here (no channel)".to_string()
    } else if is_direct_message(channel) {
        "in a direct message".to_string()
    } else {
        format!("in <#{channel}>")
    };
    let reason = if e.only_in.is_empty() {
        format!(
            "{what} may not be run {here}; run it in a channel (channels entry `{}`).",
            e.id
        )
    } else {
        let allowed: Vec<String> = e.only_in.iter().map(|c| format!("<#{c}>")).collect();
        format!(
            "{what} may not be run {here}; it may only be run in {} (channels entry `{}`).",
            allowed.join(", "),
            e.id
        )
    };
    ChannelRefusal {
        rule: format!("channels.{}", e.id),
        reason,
    }
}

impl super::Policy {
    /// Why `family` on any of `resources` may not be run in `channel` (its Slack ID; empty when
    /// there is none): the first entry that refuses.
    pub fn channel_refusal(
        &self,
        family: Family,
        resources: &[String],
        channel: &str,
    ) -> Option<ChannelRefusal> {
        resources.iter().find_map(|r| {
            self.channels
                .refusal(&ResourceKey::of(r.clone()), family, channel)
        })
    }

    /// `d` for a command typed in `channel`: a decision that would let it run (or open a change
    /// request) becomes a denial when a `channels` entry keeps it out of there.
    pub fn scoped_to<'a>(
        &self,
        mut d: super::Decision<'a>,
        family: Family,
        channel: &str,
    ) -> super::Decision<'a> {
        if d.outcome == super::Outcome::Deny {
            return d;
        }
        let Some(resource) = d.resource() else {
            return d;
        };
        if let Some(r) = self.channel_refusal(family, &[resource], channel) {
            d.outcome = super::Outcome::Deny;
            d.rule = r.rule;
            d.reason = r.reason;
            d.approval = None;
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::super::compile_errors::BASE;
    use super::super::model::Visibility;
    use super::super::{Outcome, Policy, SlackUser, decide};
    use crate::command::parse_line;

    fn with_channels(entries: &str) -> Policy {
        let text = BASE.replacen("limits:", &format!("channels:\n{entries}\nlimits:"), 1);
        Policy::from_yaml(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `(outcome, rule, reason)` of `line` typed by `U1` in `channel`.
    fn typed(p: &Policy, line: &str, channel: &str) -> (Outcome, String, String) {
        let user = SlackUser::new("U1");
        let parsed = parse_line(line);
        let d = decide(p, &user, &parsed);
        let family = parsed.as_ref().expect("parses").family();
        let d = p.scoped_to(d, family, channel);
        (d.outcome, d.rule, d.reason)
    }

    #[test]
    fn only_in_refuses_every_other_place_and_names_the_channels() {
        let p = with_channels(
            "  - { id: web-in-ops, resources: [\"kube:c1/web\"], only_in: [C0OPSROOM, C0OPSROOM2] }",
        );
        let line = "/kubectl get pods -n web";
        assert_eq!(typed(&p, line, "C0OPSROOM").0, Outcome::Allow);
        assert_eq!(typed(&p, line, "C0OPSROOM2").0, Outcome::Allow);
        for elsewhere in ["C0ELSEWHERE", "D0SOMEONE", "", "C0OPSROOM3"] {
            let (outcome, rule, reason) = typed(&p, line, elsewhere);
            assert_eq!(outcome, Outcome::Deny, "{elsewhere}");
            assert_eq!(rule, "channels.web-in-ops");
            assert!(reason.contains("<#C0OPSROOM>, <#C0OPSROOM2>"), "{reason}");
        }
        // Another namespace isn't scoped; `-A` touches `web`, so it is.
        assert_eq!(
            typed(&p, "/kubectl get pods -n api", "D0SOMEONE").0,
            Outcome::Allow
        );
        assert_eq!(
            typed(&p, "/kubectl get pods -A", "C0ELSEWHERE").0,
            Outcome::Deny
        );
    }

    #[test]
    fn scoping_entries_combine_and_only_their_families_are_scoped() {
        let p = with_channels(
            "  - { id: c1-in-two, resources: [\"kube:c1/*\"], only_in: [C0AAAAAAA, C0BBBBBBB] }\n  \
             - { id: web-in-b, resources: [\"kube:c1/web\"], only_in: [C0BBBBBBB] }\n  \
             - { id: deploys-no-dms, resources: [\"*\"], commands: [deploy], direct_messages: false }",
        );
        assert_eq!(
            typed(&p, "/kubectl get pods -n api", "C0AAAAAAA").0,
            Outcome::Allow
        );
        let (outcome, rule, _) = typed(&p, "/kubectl get pods -n web", "C0AAAAAAA");
        assert_eq!(
            (outcome, rule.as_str()),
            (Outcome::Deny, "channels.web-in-b")
        );
        assert_eq!(
            typed(&p, "/kubectl get pods -n web", "C0BBBBBBB").0,
            Outcome::Allow
        );
        // The deploy-only entry doesn't touch kubectl; c1-in-two doesn't touch stacks.
        assert_eq!(
            typed(&p, "/kubectl get pods -n api", "C0BBBBBBB").0,
            Outcome::Allow
        );
    }

    #[test]
    fn direct_messages_false_refuses_dms_and_no_channel_only() {
        let p =
            with_channels("  - { id: no-dms, resources: [\"kube:c1/*\"], direct_messages: false }");
        let line = "/kubectl get pods -n web";
        assert_eq!(typed(&p, line, "C0ANYWHERE").0, Outcome::Allow);
        assert_eq!(typed(&p, line, "G0PRIVATE1").0, Outcome::Allow);
        let (outcome, rule, reason) = typed(&p, line, "D0SOMEONE");
        assert_eq!((outcome, rule.as_str()), (Outcome::Deny, "channels.no-dms"));
        assert!(
            reason.contains("may not be run in a direct message"),
            "{reason}"
        );
        assert_eq!(typed(&p, line, "").0, Outcome::Deny);
    }

    #[test]
    fn a_denial_keeps_its_own_rule_and_output_comes_from_the_first_entry_that_sets_it() {
        let p = with_channels(
            "  - { id: scope-only, resources: [\"*\"], only_in: [C0OPSROOM] }\n  \
             - { id: web-private, resources: [\"kube:c1/web\"], output: ephemeral }",
        );
        // U1 may not read c2 at all: the RBAC denial stands, not the channel's.
        let (outcome, rule, _) = typed(&p, "/kubectl @c2 get pods -n web", "C0ELSEWHERE");
        assert_eq!(outcome, Outcome::Deny);
        assert!(!rule.starts_with("channels."), "{rule}");
        let user = SlackUser::new("U1");
        let parsed = parse_line("/kubectl get pods -n web");
        let d = decide(&p, &user, &parsed);
        assert_eq!(d.visibility, Visibility::Ephemeral);
    }
}
