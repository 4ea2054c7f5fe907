//! `weft:step/s3`: S3 put-object made by the host on a step's behalf, signed with the step's
//! bound `api-key-secret` credential, under the plugin's `s3` grant.
//!
//! Checked on every request: the bucket (and the key prefix, when the grant names one) must be
//! granted; a custom endpoint must be an origin the grant lists, and its address, or every
//! address its name resolves to, must pass the grant's address policy, exactly as for HTTP. The
//! step never sees the secret; an error message that echoes it is redacted.

use std::collections::HashMap;
use std::error::Error as _;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, StalledStreamProtectionConfig};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use sha2::{Digest, Sha256};
use url::Url;
use wasmtime::component::{HasData, Linker};

use super::bindings::weft::step::s3::{
    self, PutObjectOutput, PutObjectRequest, S3Error, ServiceError,
};
use super::http::{AddressDenied, ResolveOverrides, resolve_checked};
use crate::secrets::{Auth, Credential};
use weft_model::grants::http::AddressPolicy;
use weft_model::grants::s3::S3Grant;
use weft_model::redact::Redactor;

/// S3 clients shared by every step: one HTTP connection pool per address policy, and one SDK
/// client per (policy, region, endpoint, addressing style, credential).
#[derive(Debug)]
pub struct S3Clients {
    http: Mutex<HashMap<AddressPolicy, SharedHttpClient>>,
    clients: Mutex<HashMap<String, aws_sdk_s3::Client>>,
    overrides: ResolveOverrides,
}

/// Most SDK clients kept; past this the cache starts over (each is cheap to rebuild).
const MAX_CLIENTS: usize = 256;

impl S3Clients {
    /// Clients whose resolvers answer for the names in `overrides` with the given addresses
    /// instead of asking DNS; the answers are still checked.
    pub fn with_overrides(overrides: HashMap<String, Vec<IpAddr>>) -> Self {
        Self {
            http: Mutex::default(),
            clients: Mutex::default(),
            overrides: Arc::new(overrides),
        }
    }

    fn http_client(&self, policy: AddressPolicy) -> SharedHttpClient {
        let mut clients = self.http.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(policy)
            .or_insert_with(|| {
                aws_smithy_http_client::Builder::new()
                    .pool_idle_timeout(Duration::from_secs(30))
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
                    ))
                    .build_with_resolver(CheckingDns {
                        policy,
                        overrides: self.overrides.clone(),
                    })
            })
            .clone()
    }

    fn client(
        &self,
        policy: AddressPolicy,
        target: &Target,
        key: &str,
        secret: &str,
    ) -> aws_sdk_s3::Client {
        // The cache key holds a digest of the secret, never the secret itself.
        let id = format!(
            "{policy:?}\0{}\0{}\0{}\0{key}\0{}",
            target.region,
            target
                .endpoint
                .as_ref()
                .map(Url::as_str)
                .unwrap_or_default(),
            target.path_style,
            hex::encode(Sha256::digest(secret.as_bytes()))
        );
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&id) {
            return client.clone();
        }
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(target.region.clone()))
            .credentials_provider(Credentials::new(key, secret, None, None, "weft"))
            .http_client(self.http_client(policy))
            .force_path_style(target.path_style)
            // Retries belong to the step (its `retry` policy), not to one call inside it.
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
        if let Some(endpoint) = &target.endpoint {
            config = config.endpoint_url(endpoint.as_str().trim_end_matches('/'));
        }
        let client = aws_sdk_s3::Client::from_conf(config.build());
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(id, client.clone());
        client
    }
}

#[derive(Debug, Clone)]
struct CheckingDns {
    policy: AddressPolicy,
    overrides: ResolveOverrides,
}

impl ResolveDns for CheckingDns {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        DnsFuture::new(async move {
            resolve_checked(self.policy, &self.overrides, name, "s3")
                .await
                .map_err(ResolveDnsError::new)
        })
    }
}

/// Everything one step execution needs to call S3.
#[derive(Debug, Clone)]
pub struct S3Context {
    /// The plugin's name, for messages.
    pub plugin: String,
    /// The step's id, for messages.
    pub step: String,
    /// The plugin's grant; `None` when it has none.
    pub grant: Option<Arc<S3Grant>>,
    /// The credential bound to the step, if any.
    pub credential: Option<Arc<Credential>>,
    /// The shared clients.
    pub clients: Arc<S3Clients>,
}

/// The host side of `weft:step/s3` for one step execution.
#[derive(Debug, Default)]
pub struct S3Host {
    context: Option<S3Context>,
    deadline: Option<Instant>,
    /// Whether the step asked for an object to be written (see [`S3Host::changed_outside`]).
    wrote: bool,
}

impl S3Host {
    /// State for one step execution; `None` means S3 is not available to it at all.
    pub fn new(context: Option<S3Context>, deadline: Instant) -> Self {
        Self {
            context,
            deadline: Some(deadline),
            wrote: false,
        }
    }

    /// Whether the step may have written an object: it asked for one with S3 available to it,
    /// whether or not the write succeeded (a failed request may still have reached the bucket).
    pub fn changed_outside(&self) -> bool {
        self.wrote
    }
}

/// Where a request goes, checked.
struct Target {
    region: String,
    endpoint: Option<Url>,
    path_style: bool,
}

impl s3::Host for S3Host {
    async fn put_object(&mut self, req: PutObjectRequest) -> Result<PutObjectOutput, S3Error> {
        let Some(ctx) = &self.context else {
            return Err(S3Error::Denied("S3 is not available to this step".into()));
        };
        self.wrote = true;
        let deadline = self
            .deadline
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(30));
        put_object(ctx, req, deadline).await
    }
}

/// Writes one object exactly as a step's `put-object` does: grant, address checks, credential.
pub async fn put_object(
    ctx: &S3Context,
    req: PutObjectRequest,
    deadline: Instant,
) -> Result<PutObjectOutput, S3Error> {
    let who = format!("plugin `{}` (step `{}`)", ctx.plugin, ctx.step);
    let Some(grant) = &ctx.grant else {
        return Err(S3Error::Denied(format!(
            "{who} has no S3 grant; add `s3 = {{ buckets = [\"{}\"] }}` to its `[plugins.{}]` entry in the workspace file",
            req.bucket, ctx.plugin
        )));
    };
    let target = check(ctx, grant, &who, &req)?;
    let Some(credential) = &ctx.credential else {
        return Err(S3Error::Denied(format!(
            "step `{}` has no credential bound; S3 requests are signed with an `api-key-secret` credential (AWS access key id and secret): set `credential = \"NAME\"` on the step or bind one on the instance",
            ctx.step
        )));
    };
    let Auth::KeySecret { key, secret } = &credential.auth else {
        return Err(S3Error::Denied(format!(
            "credential `{}` is a `{}` credential; S3 requests are signed with an `api-key-secret` credential (AWS access key id and secret)",
            credential.name,
            credential.kind.name()
        )));
    };
    let origin = match &target.endpoint {
        Some(url) => url.clone(),
        None => Url::parse(&format!("https://s3.{}.amazonaws.com", target.region))
            .map_err(|e| S3Error::Invalid(format!("region `{}`: {e}", target.region)))?,
    };
    if !credential.hosts.is_empty() && !credential.hosts.iter().any(|p| p.matches(&origin)) {
        return Err(S3Error::Denied(format!(
            "credential `{}` may not be sent to `{origin}`: its `hosts` do not list it",
            credential.name
        )));
    }
    let redactor = Redactor::new(credential.secrets());
    let client = ctx
        .clients
        .client(grant.addresses, &target, key, secret.expose());

    let mut put = client
        .put_object()
        .bucket(&req.bucket)
        .key(&req.key)
        .content_type(&req.content_type)
        .body(ByteStream::from(req.body));
    if !req.tags.is_empty() {
        let tags: Vec<String> = req
            .tags
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect();
        put = put.tagging(tags.join("&"));
    }
    for (name, value) in &req.metadata {
        put = put.metadata(name, value);
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    let location = format!("s3://{}/{}", req.bucket, req.key);
    let answer = tokio::time::timeout(remaining, put.send())
        .await
        .map_err(|_| {
            S3Error::Timeout(format!(
                "writing `{location}` did not finish within the step's time limit"
            ))
        })?;
    match answer {
        Ok(output) => Ok(PutObjectOutput {
            etag: output.e_tag().map(str::to_string),
            version_id: output.version_id().map(str::to_string),
            location,
        }),
        Err(error) => Err(describe(
            error,
            &who,
            &location,
            &origin,
            &credential.name,
            &redactor,
        )),
    }
}

fn check(
    ctx: &S3Context,
    grant: &S3Grant,
    who: &str,
    req: &PutObjectRequest,
) -> Result<Target, S3Error> {
    if req.bucket.is_empty() {
        return Err(S3Error::Invalid("the bucket name is empty".into()));
    }
    if req.key.is_empty() {
        return Err(S3Error::Invalid("the object key is empty".into()));
    }
    // The region becomes part of a host name; keep it to what AWS region names look like.
    let region = req.region.trim();
    if region.is_empty()
        || region.len() > 64
        || !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(S3Error::Invalid(format!(
            "`{}` is not a region; write it like `us-east-1`",
            req.region
        )));
    }
    if !grant
        .buckets
        .iter()
        .any(|b| b.allows(&req.bucket, &req.key))
    {
        let granted = if grant.buckets.is_empty() {
            "no bucket".to_string()
        } else {
            grant
                .buckets
                .iter()
                .map(|b| format!("`{b}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(S3Error::Denied(format!(
            "{who} may not write `s3://{}/{}`: its grant allows {granted}; add `{}` to `s3.buckets` of `[plugins.{}]` to allow it",
            req.bucket, req.key, req.bucket, ctx.plugin
        )));
    }
    let endpoint = match req.endpoint.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => {
            let url = Url::parse(text)
                .map_err(|e| S3Error::Invalid(format!("endpoint `{text}` is not a URL: {e}")))?;
            if url.scheme() != "http" && url.scheme() != "https" {
                return Err(S3Error::Invalid(format!(
                    "endpoint `{text}` must be an http or https URL"
                )));
            }
            if !grant.endpoints.iter().any(|p| p.matches(&url)) {
                let origin = format!(
                    "{}://{}:{}",
                    url.scheme(),
                    url.host_str().unwrap_or_default(),
                    url.port_or_known_default().unwrap_or_default()
                );
                return Err(S3Error::Denied(format!(
                    "{who} may not use the S3 endpoint `{text}`: its grant lists {}; add `{origin}` to `s3.endpoints` of `[plugins.{}]` to allow it",
                    if grant.endpoints.is_empty() {
                        "no endpoint (Amazon S3 only)".to_string()
                    } else {
                        grant
                            .endpoints
                            .iter()
                            .map(|p| format!("`{p}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    ctx.plugin
                )));
            }
            let ip = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            };
            if let Some(ip) = ip
                && let Err(why) = grant.addresses.check_in(ip, "s3")
            {
                return Err(S3Error::Denied(format!(
                    "{who} may not use the S3 endpoint `{text}`: {why}"
                )));
            }
            Some(url)
        }
    };
    Ok(Target {
        region: region.to_string(),
        endpoint,
        path_style: req.path_style,
    })
}

fn describe(
    error: SdkError<aws_sdk_s3::operation::put_object::PutObjectError>,
    who: &str,
    location: &str,
    origin: &Url,
    credential: &str,
    redactor: &Redactor,
) -> S3Error {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(denied) = e.downcast_ref::<AddressDenied>() {
            return S3Error::Denied(format!("{who} may not reach `{origin}`: {denied}"));
        }
        source = e.source();
    }
    match &error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let err = service.err();
            let code = err.code().unwrap_or("UnknownError").to_string();
            let mut message = format!("writing `{location}` failed: {code} ({status})");
            if let Some(text) = err.message().filter(|m| !m.is_empty()) {
                message.push_str(": ");
                message.push_str(text);
            }
            if let Some(hint) = hint(&code, credential) {
                message.push_str("; ");
                message.push_str(&hint);
            }
            S3Error::Service(ServiceError {
                message: redactor.text(&message),
                code,
                status,
            })
        }
        SdkError::TimeoutError(_) => {
            S3Error::Timeout(format!("writing `{location}` to `{origin}` timed out"))
        }
        SdkError::ConstructionFailure(_) => S3Error::Invalid(redactor.text(&format!(
            "the request for `{location}` could not be made: {}",
            chain(&error)
        ))),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            S3Error::Timeout(format!("writing `{location}` to `{origin}` timed out"))
        }
        _ => S3Error::Connection(redactor.text(&format!(
            "writing `{location}` to `{origin}` failed: {}",
            chain(&error)
        ))),
    }
}

/// What usually fixes the errors people meet first.
fn hint(code: &str, credential: &str) -> Option<String> {
    Some(match code {
        "SignatureDoesNotMatch" => format!(
            "the secret access key of credential `{credential}` does not match its access key id"
        ),
        "InvalidAccessKeyId" => {
            format!("the store does not know the access key id of credential `{credential}`")
        }
        "AccessDenied" => format!(
            "the user of credential `{credential}` is not allowed `s3:PutObject` on this bucket and key"
        ),
        "NoSuchBucket" => "check the bucket's name, and that it exists in this region".into(),
        "PermanentRedirect" | "AuthorizationHeaderMalformed" => {
            "the bucket is in another region; set the step's `region` to the bucket's".into()
        }
        _ => return None,
    })
}

/// The error and its sources on one line, without the SDK's repeated wrappers.
fn chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// `application/x-www-form-urlencoded` for one tag key or value.
fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

struct HasS3;

impl HasData for HasS3 {
    type Data<'a> = &'a mut S3Host;
}

/// Adds `weft:step/s3` to `linker`, with per-execution state from `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut S3Host,
) -> wasmtime::Result<()> {
    s3::add_to_linker::<T, HasS3>(linker, get)
}
