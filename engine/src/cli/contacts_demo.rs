//! `weft demo contacts-sync`: the Contacts Sync example end to end, offline: pages of contacts
//! upserted into a CRM, through loops and branches.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;

use weft::demo::contacts::{self, ContactStandIns};
use weft::runner::{RunRequest, Runner};
use weft::store::{RunStore, SledStore, Status, Store};
use weft_model::limits::Human;
use weft_model::value::RecordedValue;

use super::output;

/// How many pages of how many contacts the stand-in serves.
const PAGES: usize = 3;
const PER_PAGE: usize = 250;

/// Starts the stand-ins, writes the example workspace pointed at them into `dir`, runs the
/// sync and says what it created, updated and skipped.
pub fn main(dir: PathBuf) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let rt = super::runtime()?;
    rt.block_on(run(&dir))
}

async fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    let stand_ins = ContactStandIns::start(PAGES, PER_PAGE).await?;
    let workspace = contacts::write_workspace(dir, &stand_ins)?;
    let ws = super::load_workspace(&workspace)?;
    println!("Weft demo: Contacts Sync, offline");
    println!(
        "  contacts API stand-in  {}  ({PAGES} pages of {PER_PAGE} contacts)",
        stand_ins.contacts_api()
    );
    println!(
        "  CRM stand-in           {}  (has a third of them as they are, a third out of date)",
        stand_ins.crm_api()
    );
    println!(
        "  workspace              {}  (examples/contacts-sync pointed at the stand-ins)",
        workspace.display()
    );

    let store_dir = dir.join("store");
    let store = Arc::new(Store::from(SledStore::open(&store_dir)?));
    let host = super::plugin_host(&store)?;
    let runner = Runner::new(host, store.clone());
    let instance = ws
        .file
        .instances
        .first()
        .map(|i| i.id.clone())
        .context("the example workspace has no instance")?;
    println!("\n▶ {instance}: flow `sync`");
    let run = runner
        .run(RunRequest {
            workspace: &ws,
            instance: &instance,
            flow: Some("sync"),
            trigger: Value::Null,
        })
        .await?;
    store.flush()?;
    output::steps_table(&run);
    let took = Human(std::time::Duration::from_micros(
        run.run.duration_us.unwrap_or_default(),
    ));
    if run.run.status != Status::Succeeded {
        println!("  run {} {} in {took}", run.run.id, run.run.status);
        if let Some(error) = &run.run.error {
            eprintln!("  error: {error}");
        }
        return Ok(ExitCode::FAILURE);
    }
    let (created, updated, skipped) = tally(run.run.result.as_ref());
    let log = stand_ins.log();
    println!(
        "\n  {created} created, {updated} updated, {skipped} skipped (unchanged) of {} contacts",
        stand_ins.contacts
    );
    println!(
        "  the CRM received {} creates and {} updates",
        log.created.len(),
        log.updated.len()
    );
    println!("  run {} succeeded in {took}", run.run.id);
    println!(
        "\nThe run's tree (loops collapsed, failed iterations open; --iteration N opens one):\n  weft runs show {} --store {}",
        run.run.id,
        store_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Counts the CRM's answers in the run's summary: `{"created": id}`, `{"updated": id}`, or
/// `null` for a skipped contact.
fn tally(result: Option<&RecordedValue>) -> (usize, usize, usize) {
    let Some(RecordedValue::Json(summary)) = result else {
        return (0, 0, 0);
    };
    let outcomes = summary["pages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten();
    let (mut created, mut updated, mut skipped) = (0, 0, 0);
    for outcome in outcomes {
        if outcome.get("created").is_some() {
            created += 1;
        } else if outcome.get("updated").is_some() {
            updated += 1;
        } else if outcome.is_null() {
            skipped += 1;
        }
    }
    (created, updated, skipped)
}
