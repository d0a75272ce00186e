//! Where output appears. Read output on protected resources is ephemeral (only the requester sees
//! it, with a Share button) unless the policy's `channels` section says otherwise for the
//! resource; the first matching entry decides. (Channel scoping of commands will live in the same
//! section.)

use super::compile::PolicyError;
use super::model::{ChannelRule, Visibility};
use super::patterns::{AllNamespaces, PatternIndex, ResourceKey};
use crate::command::Family;

/// The compiled `channels` section.
#[derive(Debug)]
pub(crate) struct Channels {
    rules: Vec<(u8, Visibility)>,
    index: PatternIndex,
}

impl Channels {
    pub(crate) fn compile(
        rules: &[ChannelRule],
        families: impl Fn(&[super::model::Name]) -> Result<u8, PolicyError>,
        patterns: impl Fn(&[super::model::Name]) -> Result<(), PolicyError>,
    ) -> Result<Channels, PolicyError> {
        let mut compiled = Vec::new();
        let mut items = Vec::new();
        for r in rules {
            patterns(&r.resources)?;
            let mask = if r.commands.is_empty() {
                u8::MAX
            } else {
                families(&r.commands)?
            };
            let idx = u32::try_from(compiled.len()).unwrap_or(u32::MAX);
            items.extend(r.resources.iter().map(|p| (idx, p.value.clone())));
            compiled.push((mask, r.output));
        }
        // Coverage, as for permissions: a rule for one namespace doesn't speak for `-A`.
        let index = PatternIndex::build(
            items.iter().map(|(i, p)| (*i, p.as_str())),
            AllNamespaces::NeedsStar,
        )
        .map_err(|e| PolicyError {
            line: 0,
            column: 0,
            message: format!("channels: {e}"),
        })?;
        Ok(Channels {
            rules: compiled,
            index,
        })
    }

    /// The visibility of `family`'s output on `key`: the first matching entry's, else
    /// ephemeral when the resource is protected, else the channel.
    pub(crate) fn visibility(
        &self,
        key: &ResourceKey,
        family: Family,
        protected: bool,
    ) -> Visibility {
        self.index
            .all(key)
            .into_iter()
            .map(|i| self.rules[i as usize])
            .find(|(mask, _)| mask & family.bit() != 0)
            .map_or(
                if protected {
                    Visibility::Ephemeral
                } else {
                    Visibility::Channel
                },
                |(_, v)| v,
            )
    }
}
