//! Loading and validating a workspace, collecting every problem rather than the first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::spec::{IntegrationFile, WorkspaceFile, read_file};
use crate::workspace::{Diagnostic, Integration, ValidationErrors, Workspace};

mod code;
mod instances;
mod limits;
mod marketplace;
mod plugins;
mod steps;

use instances::check_customers_and_instances;
use plugins::{check_grants, check_manifests, check_plugins, check_s3_grants};
use steps::check_integration;

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
            Ok(mut spec) => {
                code::read_code_files(&int_path, &mut spec, &mut report);
                marketplace::read_icon(&int_path, &mut spec, &mut report);
                specs.push((int_path, spec));
            }
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
    mut file: WorkspaceFile,
    specs: Vec<(PathBuf, IntegrationFile)>,
    mut report: Report,
) -> Result<Workspace, ValidationErrors> {
    let dir = path.parent().unwrap_or(Path::new("."));
    code::add_code_plugins(&mut file, &specs, path, &mut report);
    check_plugins(&file, dir, path, &mut report);
    let grants = check_grants(&file, path, &mut report);
    let s3_grants = check_s3_grants(&file, path, &mut report);
    let manifests = check_manifests(&file, &specs, dir, path, &grants, &s3_grants, &mut report);
    for (name, spec) in &file.credentials {
        for problem in spec.check_in_file() {
            report.add(path, &[quoted("credential", name)], problem);
        }
    }
    if let Some(embed) = &file.embed {
        marketplace::check_embed(embed, path, &mut report);
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

pub(super) fn did_you_mean<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
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
