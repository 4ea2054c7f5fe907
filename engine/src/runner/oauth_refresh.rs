//! Before a run uses an OAuth connection: its access token refreshed when it is about to
//! expire, or the run stopped with what the customer must do (connect again) when the
//! provider refused the refresh — which also marks the connection failed for the marketplace
//! and the console.

use anyhow::bail;
use weft_model::credential::{CredentialSpec, Scope};
use weft_model::spec::{ConnectionKind, InstanceSpec};
use weft_model::workspace::Integration;

use super::Runner;
use crate::secrets::oauth::{self, Client, TokenError};

impl Runner {
    /// Makes the stored tokens of connection credential `credential` (of `instance`, for
    /// `integration`'s OAuth connection `connection`) fresh enough to use. Nothing to do for
    /// other connections, or when it is not connected (the credential lookup says so then).
    pub(super) async fn refresh_connection(
        &self,
        integration: &Integration,
        instance: &InstanceSpec,
        connection: &str,
        credential: &str,
    ) -> anyhow::Result<()> {
        let Some(spec) = integration.spec.connections.get(connection) else {
            return Ok(());
        };
        if !spec.kind.is_oauth() {
            return Ok(());
        }
        let Some(vault) = &self.vault else {
            return Ok(());
        };
        let scope = Scope::Customer(instance.customer.clone());
        let reconnect = "connect it again in the marketplace (Configure → Connections)";
        let check = |current: &CredentialSpec| -> anyhow::Result<()> {
            if let Some(why) = &current.failed {
                bail!("connection `{connection}` stopped working ({why}); {reconnect}");
            }
            Ok(())
        };
        match vault.get(&scope, credential)? {
            Some(current) if !oauth::needs_refresh(&current) => return check(&current),
            None => return Ok(()),
            Some(_) => {}
        }
        // One refresh of a connection at a time in this process: a provider that rotates
        // refresh tokens accepts each once, so a second run must use the tokens the first got.
        let lock = {
            let mut locks = self.oauth_refresh.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(credential.to_string()).or_default().clone()
        };
        let _refreshing = lock.lock().await;
        let Some(current) = vault.get(&scope, credential)? else {
            return Ok(());
        };
        check(&current)?;
        if !oauth::needs_refresh(&current) {
            return Ok(());
        }
        let client = match spec.kind {
            ConnectionKind::Oauth2ClientCredentials => Client::of_customer(&current),
            _ => Client::of_integration(spec, integration.path.parent().unwrap_or(".".as_ref()))?,
        };
        // On its own task, so that a caller that stops waiting (a timeout, a closed request)
        // cannot drop a rotated refresh token between the provider issuing it and the vault.
        let (vault, spec, connection_name, instance_id) = (
            vault.clone(),
            spec.clone(),
            connection.to_string(),
            instance.id.clone(),
        );
        let credential = credential.to_string();
        let refreshed = tokio::spawn(async move {
            let outcome = oauth::refresh(&spec, &client, &current).await;
            store_refresh(&vault, &scope, &credential, &current, outcome)
        });
        match refreshed.await {
            Ok(Ok(())) => {
                tracing::info!(instance = %instance_id, connection = %connection_name, "refreshed an OAuth access token");
                Ok(())
            }
            Ok(Err(Stop::Refused(why))) => {
                tracing::warn!(instance = %instance_id, connection = %connection_name, "{why}");
                bail!("connection `{connection_name}` stopped working ({why}); {reconnect}")
            }
            Ok(Err(Stop::Failed(why))) => bail!(
                "connection `{connection_name}`: its access token expired and could not be refreshed ({why}); the run can be tried again"
            ),
            Ok(Err(Stop::Store(e))) => Err(e),
            Err(e) => bail!("connection `{connection_name}`: the refresh stopped: {e}"),
        }
    }
}

/// Why a refresh did not give fresh tokens.
enum Stop {
    Refused(String),
    Failed(String),
    Store(anyhow::Error),
}

/// Keeps what came of refreshing `sent`: the fresh tokens, or the connection marked failed
/// when the provider refused — unless the stored tokens changed meanwhile (another process
/// refreshed them, or the customer connected again), which the refusal then says nothing about.
fn store_refresh(
    vault: &crate::store::vault::Vault,
    scope: &Scope,
    credential: &str,
    sent: &CredentialSpec,
    outcome: Result<CredentialSpec, TokenError>,
) -> Result<(), Stop> {
    match outcome {
        Ok(fresh) => vault.put(scope, credential, &fresh).map_err(Stop::Store),
        Err(TokenError::Refused(why)) => {
            let why = format!("the provider refused to refresh its token: {why}");
            match vault.get(scope, credential).map_err(Stop::Store)? {
                Some(stored)
                    if stored.refresh_token == sent.refresh_token && stored.token == sent.token =>
                {
                    let failed = CredentialSpec {
                        failed: Some(why.clone()),
                        ..stored
                    };
                    vault.put(scope, credential, &failed).map_err(Stop::Store)?;
                    Err(Stop::Refused(why))
                }
                _ => Ok(()),
            }
        }
        Err(TokenError::Failed(why)) => Err(Stop::Failed(why)),
    }
}
