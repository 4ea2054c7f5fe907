//! `weft apply`, `weft customers`, `weft instances`, `weft integrations` and `weft config`:
//! the managed state in the store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::Value as Json;

use weft::store::Store;
use weft::store::registry::{ConfigLevel, Registry};

/// Where the store is: `--workspace` (beside it) or the global `--store`.
#[derive(Debug, clap::Args)]
pub struct Locate {
    /// The workspace whose store to use (instead of `--store`).
    #[arg(long, short, value_name = "WEFT_TOML")]
    workspace: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Customers {
    /// List the customers in the store.
    List {
        #[command(flatten)]
        at: Locate,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one customer: fields, config vars, credentials (names only) and instances.
    Show {
        /// The customer's id.
        id: String,
        #[command(flatten)]
        at: Locate,
    },
}

#[derive(Debug, Subcommand)]
pub enum Instances {
    /// List the instances in the store with their customer and pinned integration version.
    List {
        #[command(flatten)]
        at: Locate,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one instance.
    Show {
        /// The instance's id.
        id: String,
        #[command(flatten)]
        at: Locate,
    },
    /// Move an instance to another version of its integration (default: the newest).
    Upgrade {
        /// The instance's id.
        id: String,
        /// The version to move to.
        #[arg(long, value_name = "VERSION")]
        to: Option<u32>,
        #[command(flatten)]
        at: Locate,
    },
    /// Let an instance run again.
    Enable {
        /// The instance's id.
        id: String,
        #[command(flatten)]
        at: Locate,
    },
    /// Stop an instance from running.
    Disable {
        /// The instance's id.
        id: String,
        #[command(flatten)]
        at: Locate,
    },
    /// Give a flow's webhook a new secret address; the old one stops working at once.
    RotateWebhook {
        /// The instance's id.
        id: String,
        /// The flow's name.
        flow: String,
        #[command(flatten)]
        at: Locate,
    },
}

#[derive(Debug, Subcommand)]
pub enum Integrations {
    /// List the integrations in the store with their published versions.
    List {
        #[command(flatten)]
        at: Locate,
    },
}

#[derive(Debug, Subcommand)]
pub enum Config {
    /// Set a config var in the store, at the workspace level unless `--customer` or
    /// `--instance` says otherwise. VALUE is JSON when it parses as JSON, else text. The next
    /// `weft apply` sets it back to what the workspace file says.
    Set {
        /// The var's name.
        name: String,
        /// The value.
        value: String,
        /// Set it for this customer.
        #[arg(long, conflicts_with = "instance")]
        customer: Option<String>,
        /// Set it for this instance.
        #[arg(long)]
        instance: Option<String>,
        #[command(flatten)]
        at: Locate,
    },
    /// Remove a config var from the store at one level.
    Unset {
        /// The var's name.
        name: String,
        /// Remove it from this customer.
        #[arg(long, conflicts_with = "instance")]
        customer: Option<String>,
        /// Remove it from this instance.
        #[arg(long)]
        instance: Option<String>,
        #[command(flatten)]
        at: Locate,
    },
}

fn open(store: Option<&str>, at: &Locate) -> anyhow::Result<(Store, Registry)> {
    let location = super::store_location(store, at.workspace.as_deref());
    if !location.exists() {
        bail!(
            "no store at `{}`; apply a workspace first with `weft apply weft.toml`, or pass `--workspace WEFT_TOML` or `--store DIR|URL`",
            location.shown()
        );
    }
    let store = Store::open(&location)?;
    let registry = store.registry()?;
    if registry.is_empty()? {
        bail!(
            "nothing has been applied to the store at `{}`; run `weft apply weft.toml` first",
            location.shown()
        );
    }
    Ok((store, registry))
}

/// `weft apply`.
pub fn apply(store: Option<&str>, workspace: &Path, upgrade: bool) -> anyhow::Result<ExitCode> {
    let ws = super::load_workspace(workspace)?;
    let location = super::store_location(store, Some(workspace));
    let store = Store::open(&location)?;
    let host = super::plugin_host(&store)?;
    super::prepare_code(&host, &ws)?;
    let registry = store.registry()?;
    let changes = registry.apply(&ws, upgrade)?;
    store.prune_webhook_tokens()?;
    if changes.is_empty() {
        println!(
            "The store at `{}` already matches `{}`; nothing changed.",
            location.shown(),
            workspace.display()
        );
    } else {
        println!(
            "Applied `{}` to the store at `{}`:",
            workspace.display(),
            location.shown()
        );
        for change in &changes {
            println!("  {change}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn customers(store: Option<&str>, command: Customers) -> anyhow::Result<ExitCode> {
    match command {
        Customers::List { at, json } => {
            let (_, registry) = open(store, &at)?;
            let customers = registry.customers()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&customers)?);
            } else {
                println!("{:<24}  NAME", "CUSTOMER");
                for c in &customers {
                    println!("{:<24}  {}", c.id, c.name);
                }
            }
        }
        Customers::Show { id, at } => {
            let (_, registry) = open(store, &at)?;
            let customer = registry
                .customer(&id)?
                .with_context(|| format!("no customer `{id}` in the store"))?;
            println!("Customer     {} ({})", customer.id, customer.name);
            if !customer.fields.is_empty() {
                println!("Fields       {}", Json::Object(customer.fields.clone()));
            }
            for (name, value) in &customer.config {
                println!("Config       {name} = {value}");
            }
            for name in customer.credentials.keys() {
                println!("Credential   {name}");
            }
            for instance in registry.instances()? {
                if instance.spec.customer == id {
                    println!(
                        "Instance     {} (`{}` v{}{})",
                        instance.spec.id,
                        instance.spec.integration,
                        instance.version,
                        if instance.spec.enabled {
                            ""
                        } else {
                            ", disabled"
                        }
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn instances(store: Option<&str>, command: Instances) -> anyhow::Result<ExitCode> {
    match command {
        Instances::List { at, json } => {
            let (_, registry) = open(store, &at)?;
            let instances = registry.instances()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&instances)?);
            } else {
                println!(
                    "{:<28}  {:<20}  {:<24}  {:>7}  {:>7}  ENABLED",
                    "INSTANCE", "CUSTOMER", "INTEGRATION", "VERSION", "NEWEST"
                );
                for i in &instances {
                    let newest = registry
                        .versions(&i.spec.integration)?
                        .last()
                        .map_or(0, |p| p.version);
                    println!(
                        "{:<28}  {:<20}  {:<24}  {:>7}  {:>7}  {}",
                        i.spec.id,
                        i.spec.customer,
                        i.spec.integration,
                        format!("v{}", i.version),
                        format!("v{newest}"),
                        if i.spec.enabled { "yes" } else { "no" }
                    );
                }
            }
        }
        Instances::Show { id, at } => {
            let (store, registry) = open(store, &at)?;
            let i = registry
                .instance(&id)?
                .with_context(|| format!("no instance `{id}` in the store"))?;
            println!("Instance     {}", i.spec.id);
            println!("Customer     {}", i.spec.customer);
            println!("Integration  {} v{}", i.spec.integration, i.version);
            println!("Enabled      {}", if i.spec.enabled { "yes" } else { "no" });
            for (name, value) in &i.spec.config {
                println!("Config       {name} = {value}");
            }
            for (step, credential) in &i.spec.credentials {
                println!("Credential   step `{step}` uses `{credential}`");
            }
            let tokens = store.webhook_tokens()?;
            for flow in registry
                .pinned(&i)?
                .iter()
                .flat_map(|p| p.spec.flows.iter())
            {
                let token = tokens.ensure(&id, &flow.name)?;
                println!("Webhook      {}  /webhooks/{token}", flow.name);
            }
            if i.spec.webhook_secret.is_some() {
                println!(
                    "             (signed: X-Weft-Timestamp and X-Weft-Signature; also at /webhooks/{id}/FLOW)"
                );
            }
        }
        Instances::Upgrade { id, to, at } => {
            let (_, registry) = open(store, &at)?;
            let (from, to) = registry.upgrade(&id, to)?;
            if from == to {
                println!("Instance `{id}` is already on v{to}.");
            } else {
                println!("Instance `{id}` moved from v{from} to v{to}; its next run uses v{to}.");
            }
        }
        Instances::Enable { id, at } => {
            let (_, registry) = open(store, &at)?;
            registry.set_enabled(&id, true)?;
            println!("Instance `{id}` is enabled.");
        }
        Instances::Disable { id, at } => {
            let (_, registry) = open(store, &at)?;
            registry.set_enabled(&id, false)?;
            println!("Instance `{id}` is disabled; it does not run until enabled.");
        }
        Instances::RotateWebhook { id, flow, at } => {
            let (store, registry) = open(store, &at)?;
            let i = registry
                .instance(&id)?
                .with_context(|| format!("no instance `{id}` in the store"))?;
            let flows: Vec<String> = registry
                .pinned(&i)?
                .iter()
                .flat_map(|p| p.spec.flows.iter().map(|f| f.name.clone()))
                .collect();
            if !flows.contains(&flow) {
                bail!(
                    "instance `{id}` has no flow `{flow}`; its flows are {}",
                    flows.join(", ")
                );
            }
            let token = store.webhook_tokens()?.rotate(&id, &flow)?;
            println!(
                "Webhook of `{id}`/`{flow}` is now /webhooks/{token}; the old address answers 404."
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn integrations(store: Option<&str>, command: Integrations) -> anyhow::Result<ExitCode> {
    match command {
        Integrations::List { at } => {
            let (_, registry) = open(store, &at)?;
            println!("{:<28}  {:>8}  VERSIONS", "INTEGRATION", "NEWEST");
            for name in registry.integration_names()? {
                let versions = registry.versions(&name)?;
                println!(
                    "{:<28}  {:>8}  {}",
                    name,
                    versions
                        .last()
                        .map(|p| format!("v{}", p.version))
                        .unwrap_or_default(),
                    versions
                        .iter()
                        .map(|p| format!("v{}", p.version))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn config(store: Option<&str>, command: Config) -> anyhow::Result<ExitCode> {
    let (name, value, customer, instance, at) = match command {
        Config::Set {
            name,
            value,
            customer,
            instance,
            at,
        } => (name, Some(value), customer, instance, at),
        Config::Unset {
            name,
            customer,
            instance,
            at,
        } => (name, None, customer, instance, at),
    };
    let (_, registry) = open(store, &at)?;
    let level = match (customer, instance) {
        (Some(c), _) => ConfigLevel::Customer(c),
        (_, Some(i)) => ConfigLevel::Instance(i),
        _ => ConfigLevel::Workspace,
    };
    let parsed = value.map(|v| serde_json::from_str(&v).unwrap_or(Json::String(v)));
    registry.set_config(&level, &name, parsed.clone())?;
    let at = match &level {
        ConfigLevel::Workspace => "the workspace".to_string(),
        ConfigLevel::Customer(c) => format!("customer `{c}`"),
        ConfigLevel::Instance(i) => format!("instance `{i}`"),
    };
    match parsed {
        Some(v) => println!("Set `{name}` = {v} for {at}; the next run sees it."),
        None => println!("Removed `{name}` from {at}."),
    }
    Ok(ExitCode::SUCCESS)
}
