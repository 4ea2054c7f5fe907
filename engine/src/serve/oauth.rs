//! OAuth 2.0 connections in the marketplace (authorization code with PKCE).
//!
//! The customer's page asks `POST /api/v1/instances/{id}/connections/{name}/authorize` (with
//! its token, like every marketplace request) for the provider's authorization URL and opens
//! it in a popup. The `state` in that URL stands, in the store, for the customer, the instance,
//! the connection and the PKCE verifier; the provider redirects the popup to
//! `/marketplace/oauth/callback`, which takes the state once, exchanges the code and stores the
//! tokens sealed in the vault at the customer's scope, exactly where a connection's fields go.
//! The runner refreshes them before they expire ([`crate::runner`]).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::json;
use weft_model::credential::Scope;
use weft_model::spec::{ConnectionKind, ConnectionSpec, connection_credential};

use super::Server;
use super::error::{ApiError, ApiResult};
use super::extract::ApiPath;
use super::self_service::customer_of;
use crate::auth::Principal;
use crate::secrets::oauth::{self, Client};
use crate::store::PendingAuthorization;
use crate::store::registry::ManagedInstance;

/// The path the provider redirects back to.
pub(super) const CALLBACK_PATH: &str = "/marketplace/oauth/callback";

/// What came of a callback: the connection it was for (when the state was known) and, if it
/// failed, why, in words for the customer.
pub(super) struct Outcome {
    pub(super) instance: Option<String>,
    pub(super) connection: Option<String>,
    pub(super) problem: Option<String>,
}

impl Server {
    /// Where browsers reach this server: `[embed] public_url`, else the `Host` the request
    /// came to (over HTTPS when a proxy says so).
    fn public_url(&self, headers: &HeaderMap) -> ApiResult<String> {
        if let Some(url) = self.embed().public_url {
            return Ok(url.trim_end_matches('/').to_string());
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && !h.contains(['/', '\\', '@', ' ']))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "the request names no host; set `public_url` under `[embed]` in the workspace file",
                )
            })?;
        let https = headers
            .get("x-forwarded-proto")
            .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
        Ok(format!("{}://{host}", if https { "https" } else { "http" }))
    }

    /// The OAuth connection `name` of `instance`'s integration.
    fn oauth_connection(
        &self,
        instance: &ManagedInstance,
        name: &str,
    ) -> ApiResult<ConnectionSpec> {
        let spec = self
            .pinned_version(instance)?
            .spec
            .connections
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no connection `{name}`")))?;
        if spec.kind != ConnectionKind::Oauth2 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_oauth",
                format!(
                    "connection `{name}` is a `{}` connection: connect it with its fields (PUT …/connections/{name})",
                    spec.kind.name()
                ),
            ));
        }
        Ok(spec)
    }

    /// Starts connecting `name` of `customer`'s `instance`: the URL its popup opens.
    fn start_authorization(
        &self,
        customer: &str,
        instance: &ManagedInstance,
        name: &str,
        headers: &HeaderMap,
    ) -> ApiResult<String> {
        let spec = self.oauth_connection(instance, name)?;
        // The tokens will go to the vault; refuse before the customer signs in if there is none.
        super::api::credentials::vault(self)?;
        let redirect_uri = format!("{}{CALLBACK_PATH}", self.public_url(headers)?);
        let state = oauth::random_token();
        let verifier = oauth::random_token();
        let url = oauth::authorize_url(&spec, &redirect_uri, &state, &verifier)
            .map_err(ApiError::internal)?;
        self.inner
            .store
            .oauth_states()
            .and_then(|states| {
                states.save(
                    &state,
                    &PendingAuthorization {
                        customer: customer.to_string(),
                        instance: instance.spec.id.clone(),
                        connection: name.to_string(),
                        verifier,
                        redirect_uri,
                        started: chrono::Utc::now().to_rfc3339(),
                    },
                )
            })
            .map_err(ApiError::internal)?;
        Ok(url)
    }

    /// Finishes an authorization the provider redirected back with `state` and `code` (or
    /// `error`): the tokens stored, or what went wrong.
    pub(super) async fn finish_authorization(
        &self,
        state: Option<&str>,
        code: Option<&str>,
        error: Option<&str>,
    ) -> Outcome {
        let mut outcome = Outcome {
            instance: None,
            connection: None,
            problem: None,
        };
        let pending = match state.map(|s| self.inner.store.oauth_states().and_then(|t| t.take(s))) {
            Some(Ok(Some(pending))) => pending,
            Some(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "an OAuth state could not be read");
                outcome.problem =
                    Some("the server could not finish the connection; try again".into());
                return outcome;
            }
            _ => {
                outcome.problem = Some(
                    "this sign-in is unknown, was used already or took longer than 10 minutes; start it again with Connect".into(),
                );
                return outcome;
            }
        };
        outcome.instance = Some(pending.instance.clone());
        outcome.connection = Some(pending.connection.clone());
        if let Err(problem) = self.store_tokens(&pending, code, error).await {
            tracing::warn!(instance = %pending.instance, connection = %pending.connection, "an OAuth connection failed: {problem}");
            outcome.problem = Some(problem);
        }
        outcome
    }

    async fn store_tokens(
        &self,
        pending: &PendingAuthorization,
        code: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), String> {
        if let Some(error) = error {
            return Err(format!("the provider said `{error}`"));
        }
        let code = code.ok_or("the provider sent no code")?;
        // The instance must still be the customer's (it may have been removed meanwhile).
        let instance = self
            .inner
            .registry
            .instance(&pending.instance)
            .ok()
            .flatten()
            .filter(|i| i.self_service && i.spec.customer == pending.customer)
            .ok_or("the integration was removed meanwhile")?;
        let spec = self
            .oauth_connection(&instance, &pending.connection)
            .map_err(|e| e.message().to_string())?;
        let ws = self
            .workspace_for(&instance.spec.id)
            .map_err(|e| e.message().to_string())?;
        let base_dir = ws
            .integrations
            .get(&instance.spec.integration)
            .and_then(|i| i.path.parent().map(ToOwned::to_owned))
            .unwrap_or_else(|| ws.dir().to_owned());
        let client = Client::of_integration(&spec, &base_dir).map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "an OAuth client secret could not be read");
            "the integration's OAuth client is not set up on this server; tell the app's support"
                .to_string()
        })?;
        let tokens = oauth::exchange_code(
            &spec,
            &client,
            code,
            &pending.verifier,
            &pending.redirect_uri,
        )
        .await
        .map_err(|e| format!("the provider issued no token: {e}"))?;
        let vault = super::api::credentials::vault(self).map_err(|e| e.message().to_string())?;
        vault
            .put(
                &Scope::Customer(pending.customer.clone()),
                &connection_credential(&pending.connection, &pending.instance),
                &tokens,
            )
            .map_err(|e| {
                tracing::error!(error = %format!("{e:#}"), "OAuth tokens could not be stored");
                "the server could not store the connection; try again".to_string()
            })?;
        self.invalidate();
        Ok(())
    }
}

/// `POST /api/v1/instances/{instance}/connections/{name}/authorize`: the provider's
/// authorization URL for the customer's popup.
pub(super) async fn authorize(
    State(server): State<Server>,
    principal: Principal,
    headers: HeaderMap,
    ApiPath((id, name)): ApiPath<(String, String)>,
) -> ApiResult {
    let customer = customer_of(&principal)?.to_string();
    let instance = server.own_instance(&principal, &id)?;
    let url = server.start_authorization(&customer, &instance, &name, &headers)?;
    super::ok(json!({ "instance": id, "connection": name, "authorize_url": url }))
}
