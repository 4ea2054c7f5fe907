//! Plugins of the workspace file: their sources, HTTP and S3 grants, and manifests checked
//! against what the grants allow.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::grants::http::{AddressPolicy, HostPattern, HttpGrant};
use crate::grants::s3::{BucketGrant, S3Grant};
use crate::limits::{Bytes, StepLimits, parse_duration, parse_size};
use crate::manifest::Manifest;
use crate::spec::{IntegrationFile, WorkspaceFile};
use crate::workspace::{PluginSource, plugin_source};

use super::{Report, quoted};

pub(super) fn check_plugins(file: &WorkspaceFile, dir: &Path, path: &Path, report: &mut Report) {
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

pub(super) fn check_grants(
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
pub(super) fn check_manifests(
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
            names.extend(
                flow.all_steps()
                    .into_iter()
                    .filter_map(|s| s.plugin.as_deref()),
            );
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
            Some(PluginSource::Url { .. } | PluginSource::Code(_)) => Ok(None),
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

pub(super) fn check_s3_grants(
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
