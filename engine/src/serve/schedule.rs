//! Schedule triggers: `trigger = { schedule = "CRON", timezone = "Area/City", overlap = false }`.
//!
//! A cron expression has five fields (minute hour day month weekday) or six with seconds
//! first; it is read in `timezone` (default UTC), so `0 9 * * MON-FRI` in `Europe/Paris` fires at
//! nine in Paris whatever the season. The time of each instance's last tick is kept in the
//! store: after downtime, a schedule that missed ticks runs **once** at start (its trigger says
//! `catch_up: true` and how many ticks were missed), not once per missed tick. A tick that
//! comes while the previous scheduled run of the same instance and flow is still going is
//! skipped (and logged) unless the trigger says `overlap = true`.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Value as Json, json};
use tokio::sync::watch;

use super::Server;
use crate::store::ScheduleTicks;

/// One flow of one instance on a schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The instance.
    pub instance: String,
    /// The flow.
    pub flow: String,
    /// The expression as written.
    pub expression: String,
    cron: cron::Schedule,
    /// The time zone it is read in.
    pub timezone: Tz,
    /// Whether runs may overlap.
    pub overlap: bool,
}

impl Schedule {
    /// Reads a flow's `trigger`; `Ok(None)` when it is not a schedule.
    pub fn parse(instance: &str, flow: &str, trigger: &Json) -> Result<Option<Self>, String> {
        let Some(expression) = trigger.get("schedule") else {
            return Ok(None);
        };
        let expression = expression
            .as_str()
            .ok_or_else(|| format!("flow `{flow}`: `schedule` must be a cron expression string"))?;
        let fields = expression.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {expression}"),
            6 | 7 => expression.to_string(),
            _ => {
                return Err(format!(
                    "flow `{flow}`: `{expression}` has {fields} fields; a cron expression has 5 (minute hour day month weekday) or 6 (seconds first)"
                ));
            }
        };
        let cron = cron::Schedule::from_str(&full)
            .map_err(|e| format!("flow `{flow}`: `{expression}` is not a cron expression: {e}"))?;
        let timezone = match trigger.get("timezone").and_then(Json::as_str) {
            None => Tz::UTC,
            Some(name) => name.parse::<Tz>().map_err(|_| {
                format!("flow `{flow}`: `{name}` is not a time zone (use an IANA name such as `Europe/Paris`)")
            })?,
        };
        let overlap = trigger
            .get("overlap")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        Ok(Some(Self {
            instance: instance.to_string(),
            flow: flow.to_string(),
            expression: expression.to_string(),
            cron,
            timezone,
            overlap,
        }))
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .after(&after.with_timezone(&self.timezone))
            .next()
            .map(|t| t.with_timezone(&Utc))
    }

    /// How many ticks fell in `(after, until]` (counting stops at 10,000) and the last of
    /// them (of those counted), if any did.
    pub fn missed(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<(usize, DateTime<Utc>)> {
        self.cron
            .after(&after.with_timezone(&self.timezone))
            .map(|t| t.with_timezone(&Utc))
            .take_while(|t| *t <= until)
            .take(10_000)
            .enumerate()
            .last()
            .map(|(n, tick)| (n + 1, tick))
    }

    fn key(&self) -> Vec<u8> {
        let mut key = Vec::new();
        for part in [&self.instance, &self.flow] {
            key.extend_from_slice(&(part.len() as u32).to_be_bytes());
            key.extend_from_slice(part.as_bytes());
        }
        key
    }
}

/// Every schedule of every enabled instance in the store, and the problems of those that do
/// not parse.
pub fn collect(server: &Server) -> anyhow::Result<(Vec<Schedule>, Vec<String>)> {
    let registry = server.registry();
    let (mut schedules, mut problems) = (Vec::new(), Vec::new());
    for instance in registry.instances()? {
        if !instance.spec.enabled {
            continue;
        }
        let Some(published) = registry
            .versions(&instance.spec.integration)?
            .into_iter()
            .find(|p| p.version == instance.version)
        else {
            continue;
        };
        for flow in &published.spec.flows {
            let Some(trigger) = &flow.trigger else {
                continue;
            };
            match Schedule::parse(&instance.spec.id, &flow.name, trigger) {
                Ok(Some(s)) => schedules.push(s),
                Ok(None) => {}
                Err(e) => problems.push(format!("instance `{}`: {e}", instance.spec.id)),
            }
        }
    }
    Ok((schedules, problems))
}

/// Runs every schedule until `shutdown` turns true.
pub async fn run(
    server: Server,
    schedules: Vec<Schedule>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let ticks = server.inner.store.schedule_ticks()?;
    let mut tasks = Vec::new();
    for schedule in schedules {
        tasks.push(tokio::spawn(one(
            server.clone(),
            ticks.clone(),
            schedule,
            shutdown.clone(),
        )));
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

async fn one(
    server: Server,
    ticks: ScheduleTicks,
    schedule: Schedule,
    mut shutdown: watch::Receiver<bool>,
) {
    let busy = Arc::new(AtomicBool::new(false));
    let now = Utc::now();
    let last = ticks.last(&schedule.key());
    let mut cursor = now;
    if let Some(last) = last {
        if let Some((missed, latest)) = schedule.missed(last, now) {
            // Caught up as the latest missed tick, which every process sharing the store
            // works out alike: whichever claims it first runs it, once.
            fire(&server, &ticks, &schedule, &busy, latest, Some(missed));
        }
    } else {
        // First start: remember now, so that downtime from here on is caught up.
        let _ = ticks.claim(&schedule.key(), now);
    }
    loop {
        let Some(next) = schedule.next_after(cursor) else {
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        fire(&server, &ticks, &schedule, &busy, next, None);
        cursor = next;
    }
}

/// Whether the schedule's previous run is still going, here (`busy`, which is set if not) or,
/// for a front end, queued or running on a worker (the previous tick may have been fired by
/// another front end).
fn previous_going(server: &Server, schedule: &Schedule, busy: &AtomicBool) -> bool {
    if busy.swap(true, Ordering::SeqCst) {
        return true;
    }
    let elsewhere = server
        .queued_unfinished(&schedule.instance, &schedule.flow)
        .unwrap_or_else(|e| {
            tracing::warn!(
                flow = %schedule.flow,
                instance = %schedule.instance,
                "could not tell whether the previous scheduled run is still going ({e:#}); firing"
            );
            false
        });
    if elsewhere {
        busy.store(false, Ordering::SeqCst);
    }
    elsewhere
}

fn fire(
    server: &Server,
    ticks: &ScheduleTicks,
    schedule: &Schedule,
    busy: &Arc<AtomicBool>,
    tick: DateTime<Utc>,
    missed: Option<usize>,
) {
    // Each tick fires once, whichever of the processes sharing the store claims it first.
    match ticks.claim(&schedule.key(), tick) {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::error!(
                flow = %schedule.flow,
                instance = %schedule.instance,
                "schedule tick at {tick} skipped, it could not be claimed in the store: {e:#}"
            );
            return;
        }
    }
    if let Some(missed) = missed {
        tracing::info!(
            flow = %schedule.flow,
            instance = %schedule.instance,
            "schedule missed {missed} tick(s) up to {tick}: running once now"
        );
    }
    if !schedule.overlap && previous_going(server, schedule, busy) {
        tracing::warn!(
            flow = %schedule.flow,
            instance = %schedule.instance,
            "schedule tick at {tick} skipped, the previous run is still going (set `overlap = true` to allow)"
        );
        return;
    }
    let trigger = json!({
        "schedule": schedule.expression,
        "timezone": schedule.timezone.name(),
        "scheduled_at": tick.to_rfc3339(),
        "catch_up": missed.is_some(),
        "missed_ticks": missed.unwrap_or(0),
    });
    let server = server.clone();
    let busy = busy.clone();
    let (instance, flow, overlap) = (
        schedule.instance.clone(),
        schedule.flow.clone(),
        schedule.overlap,
    );
    tokio::spawn(async move {
        if let Err(e) = server
            .start(&instance, &flow, trigger, super::Mode::Wait)
            .await
        {
            tracing::error!(
                flow = %flow,
                instance = %instance,
                "the scheduled run could not start: {}",
                e.message()
            );
        }
        if !overlap {
            busy.store(false, Ordering::SeqCst);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_fields_read_as_minutes_and_the_time_zone_applies() {
        let s = Schedule::parse(
            "i",
            "f",
            &json!({ "schedule": "0 9 * * *", "timezone": "Europe/Paris" }),
        )
        .unwrap()
        .unwrap();
        let after = DateTime::parse_from_rfc3339("2026-07-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // Nine in Paris in July is seven UTC.
        assert_eq!(
            s.next_after(after).unwrap().to_rfc3339(),
            "2026-07-02T07:00:00+00:00"
        );
    }

    #[test]
    fn missed_ticks_are_counted_and_bad_expressions_named() {
        let s = Schedule::parse("i", "f", &json!({ "schedule": "0 * * * *" }))
            .unwrap()
            .unwrap();
        let from = DateTime::parse_from_rfc3339("2026-07-01T12:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let until = from + chrono::Duration::hours(5);
        let last = DateTime::parse_from_rfc3339("2026-07-01T17:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(s.missed(from, until), Some((5, last)));
        assert_eq!(s.missed(from, from + chrono::Duration::minutes(20)), None);
        let e = Schedule::parse("i", "f", &json!({ "schedule": "every hour" })).unwrap_err();
        assert!(e.contains("has 2 fields"), "{e}");
        let e = Schedule::parse(
            "i",
            "f",
            &json!({ "schedule": "0 * * * *", "timezone": "Mars/Olympus" }),
        )
        .unwrap_err();
        assert!(e.contains("not a time zone"), "{e}");
        assert!(
            Schedule::parse("i", "f", &json!({ "webhook": true }))
                .unwrap()
                .is_none()
        );
    }
}
