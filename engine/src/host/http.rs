//! `weft:step/http`: outbound HTTP made by the host on a step's behalf, under the plugin's
//! grant, with the step's credential applied by the host.
//!
//! Checked on every request, redirects included: the URL's scheme, host and port must match a
//! pattern granted to the plugin; an IP literal, or every address a name resolves to, must be
//! allowed by the grant's address policy (no loopback, private, link-local or cloud-metadata
//! addresses unless allowed); the connection goes to an address that was checked, because the
//! client's resolver is the one doing the checking. Responses are capped, and any secret of the
//! step's credential that an upstream echoes back is redacted before the plugin sees it.

use std::collections::HashMap;
use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use url::Url;
use wasmtime::component::{HasData, Linker};

use super::bindings::weft::step::http::{self, HttpError, Request, Response};
use crate::secrets::{Auth, Credential};
use weft_model::grants::http::{AddressPolicy, HttpGrant};
use weft_model::limits::Bytes;
use weft_model::redact::Redactor;

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 10;

/// HTTP clients shared by every step, one per address policy, so connections are pooled
/// while each policy's resolver checks the addresses it hands out.
#[derive(Debug, Default)]
pub struct HttpClients {
    clients: Mutex<HashMap<AddressPolicy, reqwest::Client>>,
    overrides: ResolveOverrides,
}

impl HttpClients {
    /// Clients whose resolvers answer for the names in `overrides` with the given addresses
    /// instead of asking DNS (as `curl --resolve` does); the answers are still checked.
    pub fn with_overrides(overrides: HashMap<String, Vec<IpAddr>>) -> Self {
        Self {
            clients: Mutex::default(),
            overrides: Arc::new(overrides),
        }
    }

    fn client(&self, addresses: AddressPolicy) -> Result<reqwest::Client, HttpError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&addresses) {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(CheckingResolver {
                policy: addresses,
                overrides: self.overrides.clone(),
            }))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| HttpError::Connection(format!("failed to create the HTTP client: {e}")))?;
        clients.insert(addresses, client.clone());
        Ok(client)
    }
}

/// Refused by the resolver: the name resolves to an address the policy forbids.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct AddressDenied(pub(crate) String);

/// Names answered from a fixed table instead of DNS (`curl --resolve`), lower case.
pub(crate) type ResolveOverrides = Arc<HashMap<String, Vec<IpAddr>>>;

/// Resolves `host` (from `overrides`, else DNS) and checks every address against `policy`;
/// `grant` names the grant whose flags would allow a refused address. The error is an
/// [`AddressDenied`] or the resolver's own.
pub(crate) async fn resolve_checked(
    policy: AddressPolicy,
    overrides: &ResolveOverrides,
    host: &str,
    grant: &str,
) -> Result<Vec<IpAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let ips: Vec<IpAddr> = match overrides.get(&host.to_ascii_lowercase()) {
        Some(ips) => ips.clone(),
        None => tokio::net::lookup_host((host, 0))
            .await?
            .map(|a| a.ip())
            .collect(),
    };
    // Every address must pass: a name that mixes public and private answers is the shape of
    // a DNS rebinding attack.
    for ip in &ips {
        if let Err(why) = policy.check_in(*ip, grant) {
            return Err(Box::new(AddressDenied(format!(
                "`{host}` resolves to {why}"
            ))));
        }
    }
    Ok(ips)
}

struct CheckingResolver {
    policy: AddressPolicy,
    overrides: ResolveOverrides,
}

impl reqwest::dns::Resolve for CheckingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let overrides = self.overrides.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ips = resolve_checked(policy, &overrides, &host, "http").await?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Everything one step execution needs to make requests.
#[derive(Debug, Clone)]
pub struct HttpContext {
    /// The plugin's name, for messages.
    pub plugin: String,
    /// The step's id, for messages.
    pub step: String,
    /// The plugin's grant.
    pub grant: Arc<HttpGrant>,
    /// The credential bound to the step, if any.
    pub credential: Option<Arc<Credential>>,
    /// What a JWT payload template may reference (`config`, `customer`, `instance`).
    pub template_context: Arc<Json>,
    /// The shared clients.
    pub clients: Arc<HttpClients>,
    /// Sent as `Idempotency-Key` on the step's requests that change something (not GET, HEAD
    /// or OPTIONS) unless the step sets one: the same for the same run, step, iteration and
    /// attempt, so an upstream can drop the duplicate of a request a resumed run sends again.
    pub idempotency_key: Option<String>,
}

/// The host side of `weft:step/http` for one step execution.
#[derive(Debug, Default)]
pub struct HttpHost {
    context: Option<HttpContext>,
    deadline: Option<Instant>,
    redactor: Redactor,
    /// Whether the step sent a request that may change something (see
    /// [`HttpHost::changed_outside`]).
    unsafe_sent: bool,
}

impl HttpHost {
    /// State for one step execution; `None` means the plugin has no HTTP grant at all.
    pub fn new(context: Option<HttpContext>, deadline: Instant) -> Self {
        let redactor = Redactor::new(
            context
                .as_ref()
                .and_then(|c| c.credential.as_ref())
                .map(|c| c.secrets())
                .unwrap_or_default(),
        );
        Self {
            context,
            deadline: Some(deadline),
            redactor,
            unsafe_sent: false,
        }
    }

    /// Whether the step may have changed something at an upstream: it sent (or tried to send) a
    /// request whose method is not one of HTTP's safe methods (GET, HEAD, OPTIONS, TRACE; RFC
    /// 9110 §9.2.1), whether or not it succeeded. Safe requests can be sent again after a crash.
    pub fn changed_outside(&self) -> bool {
        self.unsafe_sent
    }
}

impl http::Host for HttpHost {
    async fn send(&mut self, req: Request) -> Result<Response, HttpError> {
        let Some(ctx) = self.context.clone() else {
            return Err(HttpError::Denied(
                "this plugin has no HTTP grant; add `http = { allow = [\"https://host\"] }` to its `[plugins.NAME]` entry in the workspace file".into(),
            ));
        };
        let deadline = self
            .deadline
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(30));
        let wanted = req.timeout_ms.map(|ms| Duration::from_millis(ms.into()));
        let safe = ["GET", "HEAD", "OPTIONS", "TRACE"]
            .iter()
            .any(|m| req.method.eq_ignore_ascii_case(m));
        self.unsafe_sent |= !safe;
        let response = send(&ctx, req, deadline, wanted, &mut self.redactor).await?;
        Ok(response)
    }
}

async fn send(
    ctx: &HttpContext,
    req: Request,
    deadline: Instant,
    wanted: Option<Duration>,
    redactor: &mut Redactor,
) -> Result<Response, HttpError> {
    let who = format!("plugin `{}` (step `{}`)", ctx.plugin, ctx.step);
    let mut url = Url::parse(&req.url)
        .map_err(|e| HttpError::Invalid(format!("`{}` is not a URL: {e}", req.url)))?;
    let mut method = reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| HttpError::Invalid(format!("`{}` is not an HTTP method", req.method)))?;
    for (name, _) in &req.headers {
        let lower = name.to_ascii_lowercase();
        if lower == "host" || lower == "proxy-authorization" {
            return Err(HttpError::Invalid(format!(
                "a step may not set the `{name}` header"
            )));
        }
    }
    let mut body = req.body;
    let started = Instant::now();
    let until = match wanted {
        Some(w) => deadline.min(started + w),
        None => deadline,
    };
    let client = ctx.clients.client(ctx.grant.addresses)?;

    for hop in 0..=MAX_REDIRECTS {
        check_url(ctx, &who, &url)?;
        let mut builder = client.request(method.clone(), url.clone());
        let applies = ctx
            .credential
            .as_ref()
            .filter(|c| credential_applies(c, &ctx.grant, &url));
        for (name, value) in &req.headers {
            if applies.is_some() && name.eq_ignore_ascii_case("authorization") {
                continue;
            }
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(key) = &ctx.idempotency_key
            && !matches!(
                method,
                reqwest::Method::GET | reqwest::Method::HEAD | reqwest::Method::OPTIONS
            )
            && !req
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("idempotency-key"))
        {
            builder = builder.header("idempotency-key", key.as_str());
        }
        if let Some(credential) = applies {
            builder = apply(credential, builder, ctx, redactor)?;
        }
        if let Some(body) = &body {
            builder = builder.body(body.clone());
        }
        let remaining = until.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(HttpError::Timeout(format!(
                "no time left for `{url}` within the step's limit"
            )));
        }
        let response = builder
            .timeout(remaining)
            .send()
            .await
            .map_err(|e| send_error(e, &url, &who))?;

        let status = response.status();
        if req.follow_redirects && status.is_redirection() {
            let Some(location) = response.headers().get(reqwest::header::LOCATION) else {
                return finish(response, ctx, &url, until, redactor).await;
            };
            let location = location.to_str().unwrap_or_default();
            let next = url.join(location).map_err(|e| {
                HttpError::Invalid(format!(
                    "`{url}` redirected to `{location}`, which is not a URL: {e}"
                ))
            })?;
            if hop == MAX_REDIRECTS {
                return Err(HttpError::Invalid(format!(
                    "`{}` redirected more than {MAX_REDIRECTS} times",
                    req.url
                )));
            }
            if status == reqwest::StatusCode::SEE_OTHER
                || (matches!(status.as_u16(), 301 | 302) && method == reqwest::Method::POST)
            {
                method = reqwest::Method::GET;
                body = None;
            }
            url = next;
            continue;
        }
        return finish(response, ctx, &url, until, redactor).await;
    }
    unreachable!("the loop returns on its last hop")
}

fn check_url(ctx: &HttpContext, who: &str, url: &Url) -> Result<(), HttpError> {
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(HttpError::Denied(format!(
            "{who} may not reach `{url}`: only http and https URLs are allowed"
        )));
    }
    if !ctx.grant.allow.iter().any(|p| p.matches(url)) {
        let origin = format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or_default()
        );
        let granted = if ctx.grant.allow.is_empty() {
            "nothing".to_string()
        } else {
            ctx.grant
                .allow
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(HttpError::Denied(format!(
            "{who} may not reach `{url}`: its grant allows {granted}; add `{origin}` to `http.allow` of `[plugins.{}]` to allow it",
            ctx.plugin
        )));
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    if let Some(ip) = ip
        && let Err(why) = ctx.grant.addresses.check(ip)
    {
        return Err(HttpError::Denied(format!(
            "{who} may not reach `{url}`: {why}"
        )));
    }
    Ok(())
}

/// A credential goes only to its own hosts, or, when it lists none, to the plugin's.
fn credential_applies(credential: &Credential, grant: &HttpGrant, url: &Url) -> bool {
    if credential.hosts.is_empty() {
        grant.allow.iter().any(|p| p.matches(url))
    } else {
        credential.hosts.iter().any(|p| p.matches(url))
    }
}

fn apply(
    credential: &Credential,
    builder: reqwest::RequestBuilder,
    ctx: &HttpContext,
    redactor: &mut Redactor,
) -> Result<reqwest::RequestBuilder, HttpError> {
    Ok(match &credential.auth {
        Auth::Bearer(token) => builder.bearer_auth(token.expose()),
        Auth::Basic { username, password } => builder.basic_auth(username, Some(password.expose())),
        Auth::ApiKeyHeader { header, key } => builder.header(header.as_str(), key.expose()),
        Auth::ApiKeyQuery { param, key } => builder.query(&[(param.as_str(), key.expose())]),
        Auth::Jwt(signer) => {
            let token = signer.token(&ctx.template_context).map_err(|e| {
                HttpError::Invalid(format!("credential `{}`: {e:#}", credential.name))
            })?;
            redactor.add(token.expose());
            builder.bearer_auth(token.expose())
        }
        Auth::KeySecret { .. } => {
            return Err(HttpError::Denied(format!(
                "credential `{}` is an `api-key-secret` credential, which signs S3 requests; HTTP requests need a `basic`, `bearer`, `api-key` or `jwt-bearer` credential",
                credential.name
            )));
        }
    })
}

fn send_error(error: reqwest::Error, url: &Url, who: &str) -> HttpError {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(denied) = e.downcast_ref::<AddressDenied>() {
            return HttpError::Denied(format!("{who} may not reach `{url}`: {denied}"));
        }
        source = e.source();
    }
    if error.is_timeout() {
        return HttpError::Timeout(format!("`{url}` did not answer in time"));
    }
    let mut chain = String::new();
    let mut source = error.source();
    while let Some(e) = source {
        chain.push_str(": ");
        chain.push_str(&e.to_string());
        source = e.source();
    }
    HttpError::Connection(format!("request to `{url}` failed{chain}"))
}

async fn finish(
    mut response: reqwest::Response,
    ctx: &HttpContext,
    url: &Url,
    until: Instant,
    redactor: &Redactor,
) -> Result<Response, HttpError> {
    let cap = ctx.grant.max_response;
    let too_large = |size: u64| {
        HttpError::TooLarge(format!(
            "the response from `{url}` is {} or more, over the {} response limit of plugin `{}`",
            Bytes(size),
            Bytes(cap),
            ctx.plugin
        ))
    };
    if let Some(length) = response.content_length()
        && length > cap
    {
        return Err(too_large(length));
    }
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                redactor.text(&String::from_utf8_lossy(v.as_bytes())),
            )
        })
        .collect();
    let mut body = Vec::new();
    loop {
        let remaining = until.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(remaining, response.chunk())
            .await
            .map_err(|_| {
                HttpError::Timeout(format!(
                    "the response body from `{url}` did not arrive in time"
                ))
            })?
            .map_err(|e| {
                HttpError::Connection(format!("reading the response from `{url}` failed: {e}"))
            })?;
        let Some(chunk) = chunk else { break };
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(too_large((body.len() + chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body: redactor.bytes(body),
    })
}

struct HasHttp;

impl HasData for HasHttp {
    type Data<'a> = &'a mut HttpHost;
}

/// Adds `weft:step/http` to `linker`, with per-execution state from `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut HttpHost,
) -> wasmtime::Result<()> {
    http::add_to_linker::<T, HasHttp>(linker, get)
}

/// Sends one request exactly as a step's would be sent (grant, address checks, credential),
/// for `weft credentials test`. Returns the status and the body.
pub async fn check_request(
    ctx: &HttpContext,
    method: &str,
    url: &str,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let mut redactor = Redactor::new(
        ctx.credential
            .as_ref()
            .map(|c| c.secrets())
            .unwrap_or_default(),
    );
    let req = Request {
        method: method.to_string(),
        url: url.to_string(),
        headers: Vec::new(),
        body: None,
        timeout_ms: None,
        follow_redirects: false,
    };
    match send(ctx, req, Instant::now() + timeout, None, &mut redactor).await {
        Ok(response) => Ok((response.status, response.body)),
        Err(
            HttpError::Denied(m)
            | HttpError::Timeout(m)
            | HttpError::Connection(m)
            | HttpError::TooLarge(m)
            | HttpError::Invalid(m),
        ) => Err(m),
    }
}
