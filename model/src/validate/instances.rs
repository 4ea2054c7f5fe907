//! Customers and instances: ids, the integration each instance uses, and its config vars.

use std::collections::HashSet;

use crate::config::ConfigProblem;
use crate::workspace::Workspace;

use super::{Report, did_you_mean, quoted};

pub(super) fn check_customers_and_instances(ws: &Workspace, report: &mut Report) {
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
                .any(|f| f.all_steps().iter().any(|s| &s.id == step_id))
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
        for name in instance.connections.keys() {
            if !integration.spec.connections.contains_key(name) {
                report.add(
                    path,
                    &[at.clone(), format!("field `connections.{name}`")],
                    format!(
                        "integration `{}` declares no connection `{name}`{}",
                        instance.integration,
                        did_you_mean(
                            name,
                            integration.spec.connections.keys().map(String::as_str)
                        )
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
