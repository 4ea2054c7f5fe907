//! The pages `weft serve` shows people: the embedded marketplace customers configure their
//! integrations in ([`marketplace`], loaded into an app's page by `/embed.js`), and the console
//! operators watch runs in ([`console`]).
//!
//! Pages are rendered on the server with minijinja (HTML auto-escaped, so a plugin's output or a
//! customer's value shown on a page is text, never markup) from templates compiled into the
//! binary, with a little hand-written JavaScript beside them; nothing is bundled or built with
//! Node.js. Every page is served with a strict Content-Security-Policy: scripts and styles only
//! from the server's own origin, no inline script.

pub(super) mod console;
pub(super) mod marketplace;
mod timeline;
mod wizard;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::Environment;
use serde::Serialize;

use super::Server;
use super::error::ApiError;

/// The templates, compiled in.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    (
        "marketplace.html",
        include_str!("templates/marketplace.html"),
    ),
    ("mp_list.html", include_str!("templates/mp_list.html")),
    ("mp_wizard.html", include_str!("templates/mp_wizard.html")),
    (
        "mp_connections.html",
        include_str!("templates/mp_connections.html"),
    ),
    ("mp_remove.html", include_str!("templates/mp_remove.html")),
    ("mp_run.html", include_str!("templates/mp_run.html")),
    ("oauth_done.html", include_str!("templates/oauth_done.html")),
    (
        "console_login.html",
        include_str!("templates/console_login.html"),
    ),
    (
        "console_home.html",
        include_str!("templates/console_home.html"),
    ),
    (
        "console_instance.html",
        include_str!("templates/console_instance.html"),
    ),
    (
        "console_runs.html",
        include_str!("templates/console_runs.html"),
    ),
    (
        "console_run_table.html",
        include_str!("templates/console_run_table.html"),
    ),
    (
        "console_run.html",
        include_str!("templates/console_run.html"),
    ),
];

/// The static files, compiled in: (name, content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "weft.css",
        "text/css; charset=utf-8",
        include_str!("assets/weft.css"),
    ),
    (
        "marketplace.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/marketplace.js"),
    ),
    (
        "oauth_done.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/oauth_done.js"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    ),
];

/// The script apps load to embed the marketplace.
const EMBED_JS: &str = include_str!("assets/embed.js");

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // `.html` templates are auto-escaped (minijinja's default for that extension).
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template `{name}` does not parse: {e}"));
        }
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env
    })
}

/// The policy of every page: its own scripts and styles only, images from itself or inline
/// icons, requests to itself; framed only by `frame_ancestors`.
fn content_security_policy(frame_ancestors: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors {frame_ancestors}"
    )
}

/// Template `name` rendered with `context`, as an HTML response that may be framed by
/// `frame_ancestors` (`'none'` for pages that are never framed).
fn render(
    status: StatusCode,
    name: &str,
    context: impl Serialize,
    frame_ancestors: &str,
) -> Response {
    let html = match templates()
        .get_template(name)
        .and_then(|t| t.render(context))
    {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(template = name, error = %e, "a page failed to render");
            return ApiError::internal(format!("page `{name}` failed to render")).into_response();
        }
    };
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(frame_ancestors)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // `same-origin` rather than `no-referrer`: with the latter a browser sends `Origin: null` on
    // the console's own forms, which could not then be told from a forged one.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => static_file(content_type, body),
        None => ApiError::not_found(format!("no asset `{name}`")).into_response(),
    }
}

async fn embed_js() -> Response {
    let mut response = static_file("text/javascript; charset=utf-8", EMBED_JS);
    // Host pages on other origins load it.
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response.headers_mut().insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    response
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The marketplace's strings: the built-in English ones with the workspace's replacements.
fn strings(server: &Server) -> BTreeMap<String, String> {
    let mut strings = weft_model::spec::marketplace_strings();
    strings.extend(server.embed().strings);
    strings
}

/// The pages' routes: under `/marketplace`, `/console` and `/ui`, none of which a webhook can
/// answer at (webhooks live under `/webhooks/`).
pub(super) fn routes() -> Router<Server> {
    Router::new()
        .route("/embed.js", get(embed_js))
        .route("/ui/{name}", get(asset))
        .merge(marketplace::routes())
        .merge(console::routes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_escapes_what_it_shows() {
        let env = templates();
        for (name, _) in TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
        let html = env
            .get_template("mp_run.html")
            .unwrap()
            .render(serde_json::json!({
                "t": weft_model::spec::marketplace_strings(),
                "run": "r1",
                "status": "failed",
                "running": false,
                "error": "<script>alert(1)</script>",
            }))
            .unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
    }
}
