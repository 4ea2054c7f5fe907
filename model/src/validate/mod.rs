//! Loading and validating a workspace, collecting every problem rather than the first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::ConfigProblem;
use crate::grants::http::{AddressPolicy, HostPattern, HttpGrant};
use crate::grants::s3::{BucketGrant, S3Grant};
use crate::limits::{Bytes, Human, StepLimits, parse_duration, parse_size};
use crate::manifest::Manifest;
use crate::spec::{IntegrationFile, RetrySpec, StepSpec, WorkspaceFile, read_file};
use crate::template::{Path as RefPath, Segment, Template};
use crate::workspace::{
    Diagnostic, Flow, Integration, PluginSource, RetryPolicy, Step, ValidationErrors, Workspace,
    plugin_source,
};

struct Report {
    diagnostics: Vec<Diagnostic>,
}

impl Report {
    fn add(&mut self, file: &Path, location: &[String], message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            file: file.to_path_buf(),
            location: location.to_vec(),
            message: message.into(),
        });
    }
}

fn quoted(kind: &str, name: &str) -> String {
    format!("{kind} `{name}`")
}

pub(crate) fn load(path: &Path) -> Result<Workspace, ValidationErrors> {
    let mut report = Report {
        diagnostics: Vec::new(),
    };
    let file: WorkspaceFile = match read_file(path) {
        Ok(file) => file,
        Err(e) => {
            report.add(path, &[], format!("{e:#}"));
            return Err(ValidationErrors(report.diagnostics));
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut specs = Vec::new();
    for (n, rel) in file.integrations.iter().enumerate() {
        let int_path = dir.join(rel);
        match read_file::<IntegrationFile>(&int_path) {
            Ok(spec) => specs.push((int_path, spec)),
            Err(e) => report.add(path, &[format!("`integrations[{n}]`")], format!("{e:#}")),
        }
    }
    build_with(path, file, specs, report)
}

/// Checks a workspace whose files were already read: `path` is where the workspace file is (or
/// was), so relative paths in it resolve; `integrations` are the integration files with theirs.
pub(crate) fn build(
    path: &Path,
    file: WorkspaceFile,
    integrations: Vec<(PathBuf, IntegrationFile)>,
) -> Result<Workspace, ValidationErrors> {
    build_with(
        path,
        file,
        integrations,
        Report {
            diagnostics: Vec::new(),
        },
    )
}

fn build_with(
    path: &Path,
    file: WorkspaceFile,
    specs: Vec<(PathBuf, IntegrationFile)>,
    mut report: Report,
) -> Result<Workspace, ValidationErrors> {
    let dir = path.parent().unwrap_or(Path::new("."));
    check_plugins(&file, dir, path, &mut report);
    let grants = check_grants(&file, path, &mut report);
    let s3_grants = check_s3_grants(&file, path, &mut report);
    let manifests = check_manifests(&file, &specs, dir, path, &grants, &s3_grants, &mut report);
    for (name, spec) in &file.credentials {
        for problem in spec.check_in_file() {
            report.add(path, &[quoted("credential", name)], problem);
        }
    }
    for customer in &file.customers {
        for (name, spec) in &customer.credentials {
            for problem in spec.check_in_file() {
                report.add(
                    path,
                    &[quoted("customer", &customer.id), quoted("credential", name)],
                    problem,
                );
            }
        }
    }

    let mut integrations = BTreeMap::new();
    for (int_path, spec) in specs {
        let integration =
            check_integration(spec, int_path.clone(), &file, dir, &manifests, &mut report);
        if let Some(previous) = integrations.get(&integration.spec.name) {
            let previous: &Arc<Integration> = previous;
            report.add(
                &int_path,
                &[],
                format!(
                    "integration name `{}` is also used by `{}`; each integration needs its own name",
                    integration.spec.name,
                    previous.path.display()
                ),
            );
            continue;
        }
        integrations.insert(integration.spec.name.clone(), Arc::new(integration));
    }

    let workspace = Workspace {
        path: path.to_path_buf(),
        file,
        integrations,
        grants,
        s3_grants,
        manifests,
    };
    check_customers_and_instances(&workspace, &mut report);

    if report.diagnostics.is_empty() {
        Ok(workspace)
    } else {
        Err(ValidationErrors(report.diagnostics))
    }
}

fn check_plugins(file: &WorkspaceFile, dir: &Path, path: &Path, report: &mut Report) {
    for name in file.plugins.keys() {
        let at = [quoted("plugin", name), "field `source`".into()];
        match plugin_source(file, dir, name) {
            Some(PluginSource::Builtin(builtin)) if !crate::builtin::is_builtin(&builtin) => {
                report.add(
                    path,
                    &at,
                    format!(
                        "there is no built-in plugin `{builtin}`; built-in plugins are {}",
                        crate::builtin::names().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            Some(PluginSource::File(file)) if !file.is_file() => report.add(
                path,
                &at,
                format!(
                    "plugin file `{}` does not exist; build the plugin or fix the path (relative paths start at the workspace file's directory)",
                    file.display()
                ),
            ),
            _ => {}
        }
        let spec = &file.plugins[name];
        if matches!(
            plugin_source(file, dir, name),
            Some(PluginSource::Url { .. })
        ) && spec.sha256.is_none()
        {
            report.add(
                path,
                &[quoted("plugin", name), "field `sha256`".into()],
                "a plugin fetched from a URL must be pinned: add `sha256 = \"…\"` (`weft plugins add FILE.wasm` prints it for a downloaded copy)",
            );
        }
        if let Some(pin) = &spec.sha256
            && (pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            report.add(
                path,
                &[quoted("plugin", name), "field `sha256`".into()],
                format!("`{pin}` is not a SHA-256 digest (64 hex digits); `weft plugins add FILE.wasm` prints the right one"),
            );
        }
        if let Some(limits) = &spec.limits {
            let at = |field: &str| [quoted("plugin", name), format!("field `limits.{field}`")];
            if let Some(Err(e)) = limits.time.as_deref().map(parse_duration) {
                report.add(path, &at("time"), e);
            }
            for (field, value) in [("memory", &limits.memory), ("output", &limits.output)] {
                if let Some(Err(e)) = value.as_deref().map(parse_size) {
                    report.add(path, &at(field), e);
                }
            }
            if let Some(Ok(m)) = limits.memory.as_deref().map(parse_size)
                && m > StepLimits::MAX_MEMORY
            {
                report.add(
                    path,
                    &at("memory"),
                    format!(
                        "more than the largest memory limit, {}",
                        Bytes(StepLimits::MAX_MEMORY)
                    ),
                );
            }
            if limits.concurrency == Some(0) {
                report.add(
                    path,
                    &at("concurrency"),
                    "at least 1 step must be allowed to run",
                );
            }
        }
    }
}

fn check_grants(
    file: &WorkspaceFile,
    path: &Path,
    report: &mut Report,
) -> BTreeMap<String, Arc<HttpGrant>> {
    let mut grants = BTreeMap::new();
    for (name, spec) in &file.plugins {
        let Some(http) = &spec.http else { continue };
        let mut grant = HttpGrant {
            allow: Vec::new(),
            addresses: AddressPolicy {
                allow_loopback: http.allow_loopback,
                allow_private: http.allow_private,
                allow_metadata: http.allow_metadata,
            },
            max_response: HttpGrant::DEFAULT_MAX_RESPONSE,
        };
        for pattern in &http.allow {
            match HostPattern::parse(pattern) {
                Ok(p) => grant.allow.push(p),
                Err(e) => report.add(
                    path,
                    &[quoted("plugin", name), "field `http.allow`".into()],
                    e,
                ),
            }
        }
        if let Some(max) = &http.max_response {
            match parse_size(max) {
                Ok(bytes) => grant.max_response = bytes,
                Err(e) => report.add(
                    path,
                    &[quoted("plugin", name), "field `http.max_response`".into()],
                    e,
                ),
            }
        }
        grants.insert(name.clone(), Arc::new(grant));
    }
    grants
}

/// Reads the manifest of every plugin the workspace declares or its steps use, and checks the
/// plugin's grants stay within what the manifest requests.
fn check_manifests(
    file: &WorkspaceFile,
    integrations: &[(PathBuf, IntegrationFile)],
    dir: &Path,
    path: &Path,
    grants: &BTreeMap<String, Arc<HttpGrant>>,
    s3_grants: &BTreeMap<String, Arc<S3Grant>>,
    report: &mut Report,
) -> BTreeMap<String, Arc<Manifest>> {
    let mut names: Vec<&str> = file.plugins.keys().map(String::as_str).collect();
    for (_, spec) in integrations {
        for flow in &spec.flows {
            names.extend(flow.steps.iter().map(|s| s.plugin.as_str()));
        }
    }
    names.sort_unstable();
    names.dedup();
    let mut manifests = BTreeMap::new();
    for name in names {
        let at = [quoted("plugin", name)];
        let manifest = match plugin_source(file, dir, name) {
            Some(PluginSource::Builtin(b)) => crate::builtin::manifest(&b)
                .map(|text| Manifest::parse(text, &format!("builtin:{b}")))
                .transpose(),
            Some(PluginSource::File(wasm)) => Manifest::beside(&wasm),
            Some(PluginSource::Url { .. }) => Ok(None),
            None => Ok(None),
        };
        let manifest = match manifest {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(e) => {
                report.add(path, &at, e);
                continue;
            }
        };
        let requested = &manifest.capabilities;
        if let Some(grant) = grants.get(name) {
            let asked: Vec<HostPattern> = requested
                .http
                .iter()
                .filter_map(|p| HostPattern::parse(p).ok())
                .collect();
            for pattern in &grant.allow {
                if !asked.iter().any(|a| a.covers(pattern)) {
                    report.add(
                        path,
                        &[quoted("plugin", name), "field `http.allow`".into()],
                        format!(
                            "`{pattern}` is more than plugin `{name}` requests in its manifest ({}); a plugin is granted at most what it asks for",
                            if requested.http.is_empty() { "no HTTP at all".to_string() } else { requested.http.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ") }
                        ),
                    );
                }
            }
        }
        if let Some(grant) = s3_grants.get(name) {
            let asked: Vec<BucketGrant> = requested
                .s3
                .iter()
                .filter_map(|b| BucketGrant::parse(b).ok())
                .collect();
            for bucket in &grant.buckets {
                if !asked.iter().any(|a| a.covers(bucket)) {
                    report.add(
                        path,
                        &[quoted("plugin", name), "field `s3.buckets`".into()],
                        format!(
                            "`{bucket}` is more than plugin `{name}` requests in its manifest ({}); a plugin is granted at most what it asks for",
                            if requested.s3.is_empty() { "no S3 at all".to_string() } else { requested.s3.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ") }
                        ),
                    );
                }
            }
        }
        if file.plugins.get(name).is_some_and(|p| p.state) && !requested.state {
            report.add(
                path,
                &[quoted("plugin", name), "field `state`".into()],
                format!("plugin `{name}` does not request persisted state in its manifest; remove `state = true`"),
            );
        }
        manifests.insert(name.to_string(), Arc::new(manifest));
    }
    manifests
}

fn check_s3_grants(
    file: &WorkspaceFile,
    path: &Path,
    report: &mut Report,
) -> BTreeMap<String, Arc<S3Grant>> {
    let mut grants = BTreeMap::new();
    for (name, spec) in &file.plugins {
        let Some(s3) = &spec.s3 else { continue };
        let mut grant = S3Grant {
            buckets: Vec::new(),
            endpoints: Vec::new(),
            addresses: AddressPolicy {
                allow_loopback: s3.allow_loopback,
                allow_private: s3.allow_private,
                allow_metadata: false,
            },
        };
        for bucket in &s3.buckets {
            match BucketGrant::parse(bucket) {
                Ok(b) => grant.buckets.push(b),
                Err(e) => report.add(
                    path,
                    &[quoted("plugin", name), "field `s3.buckets`".into()],
                    e,
                ),
            }
        }
        for endpoint in &s3.endpoints {
            match HostPattern::parse(endpoint) {
                Ok(p) => grant.endpoints.push(p),
                Err(e) => report.add(
                    path,
                    &[quoted("plugin", name), "field `s3.endpoints`".into()],
                    e,
                ),
            }
        }
        grants.insert(name.clone(), Arc::new(grant));
    }
    grants
}

fn check_integration(
    spec: IntegrationFile,
    path: PathBuf,
    ws: &WorkspaceFile,
    dir: &Path,
    manifests: &BTreeMap<String, Arc<Manifest>>,
    report: &mut Report,
) -> Integration {
    if spec.flows.is_empty() {
        report.add(
            &path,
            &[],
            "the integration has no flows; add a `[[flows]]` table with steps",
        );
    }
    for (name, var) in &spec.config_vars {
        if let Some(default) = &var.default
            && !var.kind.accepts(default)
        {
            report.add(
                &path,
                &[quoted("config var", name), "field `default`".into()],
                format!("the default {default} is not a {}", var.kind.name()),
            );
        }
    }
    let mut flow_names = HashSet::new();
    let mut flows = Vec::new();
    for flow in &spec.flows {
        let flow_at = quoted("flow", &flow.name);
        if !flow_names.insert(flow.name.clone()) {
            report.add(
                &path,
                std::slice::from_ref(&flow_at),
                "another flow has the same name; rename one of them",
            );
        }
        if flow.steps.is_empty() {
            report.add(
                &path,
                std::slice::from_ref(&flow_at),
                "the flow has no steps; add `[[flows.steps]]` tables",
            );
        }
        // Position of every step id, to tell an unknown step from one that runs later.
        let positions: HashMap<&str, usize> = flow
            .steps
            .iter()
            .enumerate()
            .rev()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut seen = HashSet::new();
        let mut steps = Vec::new();
        for (index, step) in flow.steps.iter().enumerate() {
            let step_at = [flow_at.clone(), quoted("step", &step.id)];
            if !seen.insert(step.id.as_str()) {
                report.add(
                    &path,
                    &step_at,
                    "duplicate step id; every step in a flow needs its own id because later steps refer to it",
                );
            }
            if step.id.is_empty()
                || !step
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                report.add(
                    &path,
                    &step_at,
                    "a step id may use only letters, digits, `_` and `-`, so that `steps.<id>` references can name it",
                );
            }
            if plugin_source(ws, dir, &step.plugin).is_none() {
                report.add(
                    &path,
                    &[step_at[0].clone(), step_at[1].clone(), "field `plugin`".into()],
                    format!(
                        "unknown plugin `{}`; add it to `[plugins]` in the workspace file or use a built-in plugin ({})",
                        step.plugin,
                        crate::builtin::names().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            let inputs = check_inputs(step, index, &positions, &spec, &path, &step_at, report);
            if let Some(manifest) = manifests.get(&step.plugin) {
                for name in step.inputs.keys() {
                    if !manifest.inputs.contains_key(name) {
                        report.add(
                            &path,
                            &[
                                step_at[0].clone(),
                                step_at[1].clone(),
                                format!("field `inputs.{name}`"),
                            ],
                            format!(
                                "plugin `{}` takes no input `{name}`; its inputs are {}",
                                step.plugin,
                                manifest
                                    .inputs
                                    .keys()
                                    .map(|k| format!("`{k}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                    }
                }
                for (name, input) in &manifest.inputs {
                    if input.required && !step.inputs.contains_key(name) {
                        report.add(
                            &path,
                            &[
                                step_at[0].clone(),
                                step_at[1].clone(),
                                "field `inputs`".into(),
                            ],
                            format!("plugin `{}` requires input `{name}`", step.plugin),
                        );
                    }
                }
            }
            let limits = check_limits(
                step,
                policy_limits(ws, &step.plugin),
                &path,
                &step_at,
                report,
            );
            let retry = step
                .retry
                .as_ref()
                .and_then(|r| check_retry(r, &path, &step_at, report));
            steps.push(Step {
                id: step.id.clone(),
                plugin: step.plugin.clone(),
                inputs,
                limits,
                credential: step.credential.clone(),
                retry,
                on_error: step.on_error,
            });
        }
        flows.push(Flow {
            name: flow.name.clone(),
            steps,
        });
    }
    Integration { path, spec, flows }
}

fn check_inputs(
    step: &StepSpec,
    index: usize,
    positions: &HashMap<&str, usize>,
    spec: &IntegrationFile,
    path: &Path,
    step_at: &[String; 2],
    report: &mut Report,
) -> Vec<(String, Template)> {
    let mut inputs = Vec::new();
    for (name, value) in &step.inputs {
        let at = [
            step_at[0].clone(),
            step_at[1].clone(),
            format!("field `inputs.{name}`"),
        ];
        let template = match Template::compile(value) {
            Ok(t) => t,
            Err(e) => {
                report.add(path, &at, format!("malformed template: {e}"));
                continue;
            }
        };
        for reference in template.paths() {
            if let Err(message) = check_reference(reference, index, positions, spec) {
                report.add(path, &at, message);
            }
        }
        inputs.push((name.clone(), template));
    }
    inputs
}

fn check_reference(
    reference: &RefPath,
    index: usize,
    positions: &HashMap<&str, usize>,
    spec: &IntegrationFile,
) -> Result<(), String> {
    let first = reference.segments.first();
    match reference.root.as_str() {
        "config" => match first {
            Some(Segment::Key(var)) if spec.config_vars.contains_key(var) => Ok(()),
            Some(Segment::Key(var)) => Err(format!(
                "`{reference}` names config var `{var}`, which the integration does not declare; declare it under `[config_vars]`{}",
                did_you_mean(var, spec.config_vars.keys().map(String::as_str))
            )),
            _ => Err(format!(
                "`{reference}` must name a config var, like `config.customerName`"
            )),
        },
        "steps" => {
            let Some(Segment::Key(id)) = first else {
                return Err(format!(
                    "`{reference}` must name a step, like `steps.<id>.results`"
                ));
            };
            match positions.get(id.as_str()) {
                None => Err(format!(
                    "`{reference}` refers to step `{id}`, which is not in this flow{}",
                    did_you_mean(id, positions.keys().copied())
                )),
                Some(&at) if at == index => Err(format!(
                    "`{reference}` refers to the step itself; a step can only use the results of steps before it"
                )),
                Some(&at) if at > index => Err(format!(
                    "`{reference}` refers to step `{id}`, which runs later; a step can only use the results of steps before it"
                )),
                Some(_) => match reference.segments.get(1) {
                    Some(Segment::Key(k)) if k == "results" => Ok(()),
                    _ => Err(format!(
                        "`{reference}` must continue with `.results`, like `steps.{id}.results.field`"
                    )),
                },
            }
        }
        _ => Ok(()),
    }
}

fn did_you_mean<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let lower = name.to_ascii_lowercase();
    candidates
        .filter(|c| {
            let c = c.to_ascii_lowercase();
            c.contains(&lower) || lower.contains(&c) || edit_distance(&c, &lower) <= 2
        })
        .min_by_key(|c| edit_distance(&c.to_ascii_lowercase(), &lower))
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn check_retry(
    spec: &RetrySpec,
    path: &Path,
    step_at: &[String; 2],
    report: &mut Report,
) -> Option<RetryPolicy> {
    let mut ok = true;
    let mut problem = |field: &str, message: String| {
        ok = false;
        report.add(
            path,
            &[
                step_at[0].clone(),
                step_at[1].clone(),
                format!("field `retry.{field}`"),
            ],
            message,
        );
    };
    let attempts = spec.attempts.unwrap_or(3);
    if attempts == 0 || attempts > RetryPolicy::MAX_ATTEMPTS {
        problem(
            "attempts",
            format!(
                "`{attempts}` attempts: write 1 to {} (the first attempt included)",
                RetryPolicy::MAX_ATTEMPTS
            ),
        );
    }
    let mut duration = |field: &str, text: &Option<String>, default: Duration| match text {
        None => default,
        Some(t) => parse_duration(t).unwrap_or_else(|e| {
            problem(field, e);
            default
        }),
    };
    let delay = duration("delay", &spec.delay, Duration::from_secs(1));
    let max_delay = duration("max_delay", &spec.max_delay, Duration::from_secs(30));
    let backoff = spec.backoff.unwrap_or(2.0);
    if !(1.0..=10.0).contains(&backoff) {
        problem(
            "backoff",
            format!("`{backoff}`: write a factor from 1 (equal waits) to 10"),
        );
    }
    ok.then_some(RetryPolicy {
        attempts,
        delay,
        backoff,
        max_delay,
        jitter: spec.jitter.unwrap_or(true),
    })
}

/// The limits a plugin's policy sets (each unset one the engine's default), if it sets any.
/// Malformed values are reported by `check_plugins` and read as the default here.
fn policy_limits(file: &WorkspaceFile, plugin: &str) -> Option<StepLimits> {
    let spec = file.plugins.get(plugin)?.limits.as_ref()?;
    let mut limits = StepLimits::default();
    if let Some(Ok(t)) = spec.time.as_deref().map(parse_duration) {
        limits.time = t;
    }
    if let Some(Ok(m)) = spec.memory.as_deref().map(parse_size) {
        limits.memory = m.min(StepLimits::MAX_MEMORY);
    }
    if let Some(Ok(o)) = spec.output.as_deref().map(parse_size) {
        limits.output = o;
    }
    Some(limits)
}

fn check_limits(
    step: &StepSpec,
    cap: Option<StepLimits>,
    path: &Path,
    step_at: &[String; 2],
    report: &mut Report,
) -> StepLimits {
    let mut limits = cap.unwrap_or_default();
    let mut field =
        |name: &str, text: &Option<String>, apply: &mut dyn FnMut(&str) -> Result<(), String>| {
            if let Some(text) = text
                && let Err(message) = apply(text)
            {
                report.add(
                    path,
                    &[
                        step_at[0].clone(),
                        step_at[1].clone(),
                        format!("field `{name}`"),
                    ],
                    message,
                );
            }
        };
    field("timeout", &step.timeout, &mut |t| {
        limits.time = parse_duration(t)?;
        Ok(())
    });
    field("limits.time", &step.limits.time, &mut |t| {
        limits.time = parse_duration(t)?;
        Ok(())
    });
    field("limits.memory", &step.limits.memory, &mut |t| {
        let bytes = parse_size(t)?;
        if bytes > StepLimits::MAX_MEMORY {
            return Err(format!(
                "`{t}` is more than the largest memory limit, {}",
                Bytes(StepLimits::MAX_MEMORY)
            ));
        }
        limits.memory = bytes;
        Ok(())
    });
    field("limits.output", &step.limits.output, &mut |t| {
        limits.output = parse_size(t)?;
        Ok(())
    });
    if let Some(cap) = cap {
        let at = [
            step_at[0].clone(),
            step_at[1].clone(),
            "field `limits`".to_string(),
        ];
        let over = |what: &str, asked: String, most: String| {
            format!(
                "the step asks for {asked} of {what}, but the policy of plugin `{}` allows at most {most}; lower it, or raise `limits.{what}` in `[plugins.{}]`",
                step.plugin, step.plugin
            )
        };
        if limits.time > cap.time {
            report.add(
                path,
                &at,
                over(
                    "time",
                    Human(limits.time).to_string(),
                    Human(cap.time).to_string(),
                ),
            );
        }
        if limits.memory > cap.memory {
            report.add(
                path,
                &at,
                over(
                    "memory",
                    Bytes(limits.memory).to_string(),
                    Bytes(cap.memory).to_string(),
                ),
            );
        }
        if limits.output > cap.output {
            report.add(
                path,
                &at,
                over(
                    "output",
                    Bytes(limits.output).to_string(),
                    Bytes(cap.output).to_string(),
                ),
            );
        }
    }
    limits
}

fn check_customers_and_instances(ws: &Workspace, report: &mut Report) {
    let path = &ws.path;
    let mut customer_ids = HashSet::new();
    for customer in &ws.file.customers {
        if !customer_ids.insert(customer.id.as_str()) {
            report.add(
                path,
                &[quoted("customer", &customer.id)],
                "duplicate customer id",
            );
        }
    }
    let mut instance_ids = HashSet::new();
    for instance in &ws.file.instances {
        let at = quoted("instance", &instance.id);
        if !instance_ids.insert(instance.id.as_str()) {
            report.add(path, std::slice::from_ref(&at), "duplicate instance id");
        }
        if ws.customer(&instance.customer).is_none() {
            report.add(
                path,
                &[at.clone(), "field `customer`".into()],
                format!(
                    "unknown customer `{}`; add it under `[[customers]]`{}",
                    instance.customer,
                    did_you_mean(
                        &instance.customer,
                        ws.file.customers.iter().map(|c| c.id.as_str())
                    )
                ),
            );
            continue;
        }
        if !ws.integrations.contains_key(&instance.integration) {
            report.add(
                path,
                &[at.clone(), "field `integration`".into()],
                format!(
                    "unknown integration `{}`; list its file under `integrations`{}",
                    instance.integration,
                    did_you_mean(
                        &instance.integration,
                        ws.integrations.keys().map(String::as_str)
                    )
                ),
            );
            continue;
        }
        let integration = &ws.integrations[&instance.integration];
        for step_id in instance.credentials.keys() {
            if !integration
                .flows
                .iter()
                .any(|f| f.steps.iter().any(|s| &s.id == step_id))
            {
                report.add(
                    path,
                    &[at.clone(), format!("field `credentials.{step_id}`")],
                    format!(
                        "integration `{}` has no step `{step_id}` to bind a credential to",
                        instance.integration
                    ),
                );
            }
        }
        if let Err(problems) = ws.resolve_config(instance) {
            for problem in problems {
                let var = match &problem {
                    ConfigProblem::Missing { var, .. }
                    | ConfigProblem::WrongType { var, .. }
                    | ConfigProblem::Undeclared { var, .. } => format!("config var `{var}`"),
                    ConfigProblem::Other(_) => "field `config`".into(),
                };
                report.add(path, &[at.clone(), var], problem.to_string());
            }
        }
    }
}
