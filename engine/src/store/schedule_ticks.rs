//! The last tick each schedule fired, so a restart knows what it missed.

use chrono::{DateTime, Utc};

use super::Store;
use super::kv::{KvBatch, KvTree};
use super::trees::Tree;

/// The last tick of every schedule, by the schedule's key.
#[derive(Debug, Clone)]
pub struct ScheduleTicks {
    tree: KvTree,
}

impl Store {
    /// The store's schedule ticks.
    pub fn schedule_ticks(&self) -> anyhow::Result<ScheduleTicks> {
        Ok(ScheduleTicks {
            tree: self.kv(Tree::Schedules)?,
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
            .as_deref()
            .and_then(decode)
    }

    /// Records `tick` as the last tick of schedule `key` unless a tick at or after it is
    /// recorded already (by this process or another sharing the store). Whether this call
    /// recorded it: the caller that did runs the tick, so each tick runs once.
    pub fn claim(&self, key: &[u8], tick: DateTime<Utc>) -> anyhow::Result<bool> {
        loop {
            let stored = self.tree.get(key)?;
            if stored
                .as_deref()
                .and_then(decode)
                .is_some_and(|last| last >= tick)
            {
                return Ok(false);
            }
            let mut batch = KvBatch::default();
            batch.expect(key, stored);
            batch.insert(key, tick.timestamp_millis().to_be_bytes());
            if self.tree.apply(batch)? {
                return Ok(true);
            }
        }
    }
}

fn decode(bytes: &[u8]) -> Option<DateTime<Utc>> {
    <[u8; 8]>::try_from(bytes)
        .ok()
        .map(i64::from_be_bytes)
        .and_then(DateTime::<Utc>::from_timestamp_millis)
}
