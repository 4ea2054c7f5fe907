//! Code steps: each becomes a plugin of the workspace, granted what it asks for within the
//! workspace's `[code]` policy (see [`crate::code`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::code::{self, CodeLanguage, CodeOrigin, CodeSource, JsEngine};
use crate::grants::http::HostPattern;
use crate::grants::s3::BucketGrant;
use crate::manifest::Capabilities;
use crate::spec::{
    CodePolicySpec, HttpGrantSpec, IntegrationFile, PluginSpec, S3GrantSpec, StepSpec,
    WorkspaceFile,
};

use super::{Report, quoted};

/// Reads the file of every step with `code_file` into its `code`, so that the integration
/// carries its code (a published version must not change when the file does later).
pub(super) fn read_code_files(path: &Path, spec: &mut IntegrationFile, report: &mut Report) {
    let dir = path.parent().unwrap_or(Path::new("."));
    for flow in &mut spec.flows {
        let flow_at = quoted("flow", &flow.name);
        for_each_step(&mut flow.steps, &mut |step| {
            let Some(file) = step.code_file.clone() else {
                return;
            };
            let at = [flow_at.clone(), quoted("step", &step.id)];
            if step.code.is_some() {
                report.add(
                    path,
                    &at,
                    "the step has both `code` and `code_file`; keep one",
                );
                return;
            }
            match std::fs::read_to_string(dir.join(&file)) {
                Ok(text) => step.code = Some(text),
                Err(e) => report.add(
                    path,
                    &[at[0].clone(), at[1].clone(), "field `code_file`".into()],
                    format!(
                        "cannot read `{}`: {e} (relative paths start at the integration file's directory)",
                        dir.join(&file).display()
                    ),
                ),
            }
        });
    }
}

fn for_each_step(steps: &mut [StepSpec], visit: &mut impl FnMut(&mut StepSpec)) {
    for step in steps {
        visit(step);
        for_each_step(&mut step.steps, visit);
        for branch in &mut step.branches {
            for_each_step(&mut branch.steps, visit);
        }
    }
}

/// Makes the plugin of every code step of `integrations`, checking what each asks for against
/// the workspace's `[code]` policy; `workspace_path` is the workspace file's, for messages about
/// `[code]` and `[plugins]`.
pub(super) fn add_code_plugins(
    file: &mut WorkspaceFile,
    integrations: &[(PathBuf, IntegrationFile)],
    workspace_path: &Path,
    report: &mut Report,
) {
    for name in file.plugins.keys() {
        if name.starts_with(code::PLUGIN_PREFIX) && file.plugins[name].code.is_none() {
            report.add(
                workspace_path,
                &[quoted("plugin", name)],
                format!(
                    "plugin names starting with `{}` are kept for code steps; rename the plugin",
                    code::PLUGIN_PREFIX
                ),
            );
        }
    }
    let policy = file.code.clone().unwrap_or_default();
    for (path, spec) in integrations {
        let file_text = std::fs::read_to_string(path).ok();
        for flow in &spec.flows {
            for step in flow.all_steps() {
                let at = vec![quoted("flow", &flow.name), quoted("step", &step.id)];
                let Some(text) = &step.code else {
                    stray_code_fields(step, path, &at, report);
                    continue;
                };
                let checked = CodeStep {
                    path,
                    at: &at,
                    step,
                    policy: &policy,
                };
                let Some((language, engine)) = checked.language(report) else {
                    continue;
                };
                let asked = step.capabilities.clone().unwrap_or_default();
                let granted = checked.grants(&asked, report);
                let origin = match &step.code_file {
                    Some(code_file) => CodeOrigin {
                        file: path.parent().unwrap_or(Path::new(".")).join(code_file),
                        first_line: Some(1),
                    },
                    None => CodeOrigin::inline(path, file_text.as_deref(), text),
                };
                let name = code::plugin_name(&spec.name, &flow.name, &step.id);
                let mut imports = Vec::new();
                if granted.http.is_some() {
                    imports.push("http".to_string());
                }
                if granted.s3.is_some() {
                    imports.push("s3".to_string());
                }
                if granted.state {
                    imports.push("state".to_string());
                }
                let source = CodeSource {
                    step: format!("{}/{}/{}", spec.name, flow.name, step.id),
                    language,
                    engine,
                    text: text.clone(),
                    imports,
                    origin,
                };
                file.plugins.insert(
                    name.clone(),
                    PluginSpec {
                        source: name,
                        http: granted.http,
                        s3: granted.s3,
                        sha256: None,
                        state: granted.state,
                        limits: policy.limits.clone(),
                        code: Some(Arc::new(source)),
                    },
                );
            }
        }
    }
}

/// `language`, `engine` or `capabilities` on a step without code.
fn stray_code_fields(step: &StepSpec, path: &Path, at: &[String], report: &mut Report) {
    for (field, set) in [
        ("language", step.language.is_some()),
        ("engine", step.engine.is_some()),
        ("capabilities", step.capabilities.is_some()),
    ] {
        if set {
            report.add(
                path,
                &[at, &[format!("field `{field}`")]].concat(),
                format!("`{field}` belongs to code steps; this step has no `code` or `code_file`"),
            );
        }
    }
}

/// What a code step is granted: its requests that the policy covers.
struct Granted {
    http: Option<HttpGrantSpec>,
    s3: Option<S3GrantSpec>,
    state: bool,
}

struct CodeStep<'a> {
    path: &'a Path,
    at: &'a [String],
    step: &'a StepSpec,
    policy: &'a CodePolicySpec,
}

impl CodeStep<'_> {
    fn add(&self, field: &str, report: &mut Report, message: impl Into<String>) {
        let at = [self.at, &[format!("field `{field}`")]].concat();
        report.add(self.path, &at, message);
    }

    fn language(&self, report: &mut Report) -> Option<(CodeLanguage, JsEngine)> {
        let step = self.step;
        if step.plugin.is_some() || step.kind.is_some() {
            let field = if step.plugin.is_some() {
                "plugin"
            } else {
                "type"
            };
            self.add(
                field,
                report,
                format!("a code step runs its code; remove `{field}` (or the code)"),
            );
            return None;
        }
        let from_file = step
            .code_file
            .as_deref()
            .and_then(|f| CodeLanguage::of(Path::new(f)));
        let Some(language) = step.language.or(from_file) else {
            self.add(
                "language",
                report,
                "say which language the code is in: `language = \"javascript\"` or `\"python\"`",
            );
            return None;
        };
        if language == CodeLanguage::Python && step.engine.is_some() {
            self.add(
                "engine",
                report,
                "`engine` chooses a JavaScript engine; Python code steps have one, remove it",
            );
        }
        Some((language, step.engine.unwrap_or_default()))
    }

    fn grants(&self, asked: &Capabilities, report: &mut Report) -> Granted {
        for (field, set) in [
            ("capabilities.config", asked.config.is_some()),
            ("capabilities.credentials", !asked.credentials.is_empty()),
        ] {
            if set {
                self.add(
                    field,
                    report,
                    "a code step reads its instance's config vars and works with the credential bound to it; remove this field",
                );
            }
        }
        Granted {
            http: self.http(&asked.http, report),
            s3: self.s3(&asked.s3, report),
            state: self.state(asked.state, report),
        }
    }

    fn http(&self, asked: &[String], report: &mut Report) -> Option<HttpGrantSpec> {
        if asked.is_empty() {
            return None;
        }
        let policy = self.policy.http.clone().unwrap_or_default();
        let allowed: Vec<HostPattern> = policy
            .allow
            .iter()
            .filter_map(|p| HostPattern::parse(p).ok())
            .collect();
        let mut allow = Vec::new();
        for pattern in asked {
            match HostPattern::parse(pattern) {
                Err(e) => self.add("capabilities.http", report, e),
                Ok(p) if !allowed.iter().any(|a| a.covers(&p)) => self.add(
                    "capabilities.http",
                    report,
                    format!(
                        "the step asks for `{pattern}`, which the workspace's `[code]` policy does not grant ({}); add it to `[code] http.allow` in the workspace file, or ask for less",
                        listed(&policy.allow, "no HTTP at all")
                    ),
                ),
                Ok(_) => allow.push(pattern.clone()),
            }
        }
        Some(HttpGrantSpec { allow, ..policy })
    }

    fn s3(&self, asked: &[String], report: &mut Report) -> Option<S3GrantSpec> {
        if asked.is_empty() {
            return None;
        }
        let policy = self.policy.s3.clone().unwrap_or_default();
        let allowed: Vec<BucketGrant> = policy
            .buckets
            .iter()
            .filter_map(|b| BucketGrant::parse(b).ok())
            .collect();
        let mut buckets = Vec::new();
        for bucket in asked {
            match BucketGrant::parse(bucket) {
                Err(e) => self.add("capabilities.s3", report, e),
                Ok(b) if !allowed.iter().any(|a| a.covers(&b)) => self.add(
                    "capabilities.s3",
                    report,
                    format!(
                        "the step asks for bucket `{bucket}`, which the workspace's `[code]` policy does not grant ({}); add it to `[code] s3.buckets` in the workspace file, or ask for less",
                        listed(&policy.buckets, "no S3 at all")
                    ),
                ),
                Ok(_) => buckets.push(bucket.clone()),
            }
        }
        Some(S3GrantSpec { buckets, ..policy })
    }

    fn state(&self, asked: bool, report: &mut Report) -> bool {
        if asked && !self.policy.state {
            self.add(
                "capabilities.state",
                report,
                "the step asks for persisted state, which the workspace's `[code]` policy does not grant; add `state = true` under `[code]` in the workspace file",
            );
        }
        asked && self.policy.state
    }
}

fn listed(items: &[String], none: &str) -> String {
    if items.is_empty() {
        format!("it grants {none}")
    } else {
        format!(
            "it grants {}",
            items
                .iter()
                .map(|i| format!("`{i}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
