//! The last tick each schedule fired, so a restart knows what it missed.

use chrono::{DateTime, Utc};

use super::SledStore;
use super::trees::Tree;

/// The last tick of every schedule, by the schedule's key.
#[derive(Debug, Clone)]
pub struct ScheduleTicks {
    tree: sled::Tree,
}

impl SledStore {
    /// The store's schedule ticks.
    pub fn schedule_ticks(&self) -> anyhow::Result<ScheduleTicks> {
        Ok(ScheduleTicks {
            tree: self.tree(Tree::Schedules)?,
        })
    }
}

impl ScheduleTicks {
    /// The last tick of schedule `key`, if it ever fired (an unreadable entry counts as none).
    pub fn last(&self, key: &[u8]) -> Option<DateTime<Utc>> {
        self.tree
            .get(key)
            .ok()
            .flatten()
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(i64::from_be_bytes)
            .and_then(DateTime::<Utc>::from_timestamp_millis)
    }

    /// Records `tick` as the last tick of schedule `key`.
    pub fn set(&self, key: &[u8], tick: DateTime<Utc>) -> anyhow::Result<()> {
        self.tree
            .insert(key, &tick.timestamp_millis().to_be_bytes())?;
        Ok(())
    }
}
