//! Checks of what the marketplace reads from the files: an integration's `marketplace` table and
//! `[connections]`, and the workspace's `[embed]`.

use std::collections::HashSet;
use std::path::Path;

use base64::Engine;

use super::{Report, quoted};
use crate::spec::{
    ConnectionKind, ConnectionSpec, EmbedSpec, IntegrationFile, marketplace_strings,
};

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
        for problem in oauth_problems(connection) {
            report.add(path, &[quoted("connection", name)], problem);
        }
    }
}

/// An OAuth connection names its endpoints (absolute http(s) URLs) and client; other kinds
/// name none of that.
fn oauth_problems(connection: &ConnectionSpec) -> Vec<String> {
    let mut problems = Vec::new();
    let oauth_fields = [
        ("authorize_url", connection.authorize_url.is_some()),
        ("token_url", connection.token_url.is_some()),
        ("client_id", connection.client_id.is_some()),
        ("client_secret", connection.client_secret.is_some()),
        ("scopes", !connection.scopes.is_empty()),
        ("params", !connection.params.is_empty()),
    ];
    let needed: &[&str] = match connection.kind {
        ConnectionKind::Oauth2 => &["authorize_url", "token_url", "client_id"],
        ConnectionKind::Oauth2ClientCredentials => &["token_url"],
        _ => {
            for (field, set) in oauth_fields {
                if set {
                    problems.push(format!(
                        "`{field}` is for `kind = \"oauth2\"` and `\"oauth2-client-credentials\"`"
                    ));
                }
            }
            return problems;
        }
    };
    for (field, set) in oauth_fields {
        if needed.contains(&field) && !set {
            problems.push(format!(
                "a `{}` connection needs `{field}`",
                connection.kind.name()
            ));
        }
    }
    if connection.kind == ConnectionKind::Oauth2ClientCredentials {
        if connection.authorize_url.is_some() {
            problems
                .push("`authorize_url` is not used by client credentials: nobody signs in".into());
        }
        if connection.client_id.is_some() || connection.client_secret.is_some() {
            problems.push("`client_id` and `client_secret` of a client-credentials connection are the customer's; they are filled in when connecting".into());
        }
    }
    for (field, url) in [
        ("authorize_url", &connection.authorize_url),
        ("token_url", &connection.token_url),
    ] {
        if let Some(url) = url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            problems.push(format!("`{field}` must be an http(s) URL, not `{url}`"));
        }
    }
    if let Some(secret) = &connection.client_secret
        && !secret.starts_with("env:")
        && !secret.starts_with("file:")
    {
        problems
            .push("`client_secret` is written into the file; use `env:NAME` or `file:PATH`".into());
    }
    problems
}

/// Origins are origins, the theme holds to its forms, and replaced strings exist.
pub(super) fn check_embed(embed: &EmbedSpec, path: &Path, report: &mut Report) {
    for origin in &embed.origins {
        if let Err(why) = check_origin(origin) {
            report.add(path, &["`[embed]`".into(), "field `origins`".into()], why);
        }
    }
    if let Some(url) = &embed.public_url
        && let Err(why) = check_origin(url.trim_end_matches('/'))
    {
        report.add(
            path,
            &["`[embed]`".into(), "field `public_url`".into()],
            why,
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        oauth_problems(&toml::from_str(text).unwrap())
    }

    #[test]
    fn oauth_connections_name_their_endpoints_and_keep_secrets_out_of_the_file() {
        assert!(
            problems(
                "kind = \"oauth2\"\nauthorize_url = \"https://id.example.com/a\"\ntoken_url = \"https://id.example.com/t\"\nclient_id = \"x\"\nclient_secret = \"env:X\""
            )
            .is_empty()
        );
        let missing = problems("kind = \"oauth2\"\nclient_secret = \"inline\"");
        assert!(
            missing.iter().any(|p| p.contains("needs `authorize_url`")),
            "{missing:?}"
        );
        assert!(missing.iter().any(|p| p.contains("needs `token_url`")));
        assert!(
            missing
                .iter()
                .any(|p| p.contains("`client_secret` is written into the file"))
        );
        let cc = problems(
            "kind = \"oauth2-client-credentials\"\ntoken_url = \"ftp://x\"\nclient_id = \"mine\"",
        );
        assert!(
            cc.iter().any(|p| p.contains("are the customer's")),
            "{cc:?}"
        );
        assert!(cc.iter().any(|p| p.contains("must be an http(s) URL")));
        let stray = problems("kind = \"api-key\"\ntoken_url = \"https://x\"");
        assert!(stray[0].contains("`token_url` is for"), "{stray:?}");
    }
}
