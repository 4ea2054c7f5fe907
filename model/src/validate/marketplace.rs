//! Checks of what the marketplace reads from the files: an integration's `marketplace` table and
//! `[connections]`, and the workspace's `[embed]`.

use std::collections::HashSet;
use std::path::Path;

use base64::Engine;

use super::{Report, quoted};
use crate::spec::{EmbedSpec, IntegrationFile, marketplace_strings};

/// The largest icon file, so that every listing stays small.
const ICON_LIMIT: usize = 64 * 1024;

/// Replaces an integration's `marketplace.icon` file name with the file's `data:` URL, so that
/// a published version keeps its icon wherever the store is served from.
pub(super) fn read_icon(path: &Path, spec: &mut IntegrationFile, report: &mut Report) {
    let Some(icon) = spec.marketplace.as_mut().and_then(|m| m.icon.as_mut()) else {
        return;
    };
    if icon.starts_with("data:") {
        return;
    }
    let at = ["`marketplace`".to_string(), "field `icon`".to_string()];
    let mime = match Path::new(icon.as_str())
        .extension()
        .and_then(|e| e.to_str())
    {
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => {
            report.add(path, &at, format!("`{icon}` is not an .svg or .png file"));
            return;
        }
    };
    let file = path.parent().unwrap_or(Path::new(".")).join(icon.as_str());
    match std::fs::read(&file) {
        Ok(bytes) if bytes.len() > ICON_LIMIT => report.add(
            path,
            &at,
            format!(
                "`{}` is {} bytes; an icon may have {ICON_LIMIT}",
                file.display(),
                bytes.len()
            ),
        ),
        Ok(bytes) => {
            let data = base64::engine::general_purpose::STANDARD.encode(bytes);
            *icon = format!("data:{mime};base64,{data}");
        }
        Err(e) => report.add(
            path,
            &at,
            format!(
                "cannot read `{}`: {e} (relative paths start at the integration file's directory)",
                file.display()
            ),
        ),
    }
}

/// The pages name declared vars, each once; connections name fields of their kind.
pub(super) fn check_marketplace(spec: &IntegrationFile, path: &Path, report: &mut Report) {
    let Some(marketplace) = &spec.marketplace else {
        return;
    };
    let mut seen = HashSet::new();
    for page in &marketplace.pages {
        let at = [
            "`marketplace`".to_string(),
            format!("page `{}`", page.title),
        ];
        for var in &page.vars {
            if !spec.config_vars.contains_key(var) {
                report.add(
                    path,
                    &at,
                    format!("`{var}` is not a config var of the integration; declare it under `[config_vars]`{}",
                        super::did_you_mean(var, spec.config_vars.keys().map(String::as_str))),
                );
            } else if !seen.insert(var) {
                report.add(path, &at, format!("`{var}` is on more than one page"));
            }
        }
    }
    for (name, connection) in &spec.connections {
        if connection.kind != crate::spec::ConnectionKind::ApiKey
            && (connection.header.is_some() || connection.query.is_some())
        {
            report.add(
                path,
                &[quoted("connection", name)],
                "`header` and `query` are for `kind = \"api-key\"`",
            );
        }
    }
}

/// Origins are origins, the theme holds to its forms, and replaced strings exist.
pub(super) fn check_embed(embed: &EmbedSpec, path: &Path, report: &mut Report) {
    for origin in &embed.origins {
        if let Err(why) = check_origin(origin) {
            report.add(path, &["`[embed]`".into(), "field `origins`".into()], why);
        }
    }
    for problem in embed.theme.problems() {
        report.add(path, &["`[embed.theme]`".into()], problem);
    }
    let known = marketplace_strings();
    for key in embed.strings.keys() {
        if !known.contains_key(key) {
            report.add(
                path,
                &["`[embed.strings]`".into()],
                format!(
                    "`{key}` is not one of the marketplace's strings{}",
                    super::did_you_mean(key, known.keys().map(String::as_str))
                ),
            );
        }
    }
}

fn check_origin(origin: &str) -> Result<(), String> {
    let url = url::Url::parse(origin)
        .map_err(|e| format!("`{origin}` is not an origin like `https://app.example.com`: {e}"))?;
    let bare = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && !origin.ends_with('/');
    if !bare {
        return Err(format!(
            "`{origin}` is not an origin: write the scheme, host and port only, like `https://app.example.com`"
        ));
    }
    Ok(())
}
