//! Before a run uses an OAuth connection: its access token refreshed when it is about to
//! expire, or the run stopped with what the customer must do (connect again) when the
//! provider refused the refresh — which also marks the connection failed for the marketplace
//! and the console.

use anyhow::bail;
use weft_model::credential::Scope;
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
        let check = |current: &weft_model::credential::CredentialSpec| -> anyhow::Result<()> {
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
        // One refresh at a time: a provider that rotates refresh tokens accepts each once, so
        // a second run must use the tokens the first one got.
        let _refreshing = self.oauth_refresh.lock().await;
        let Some(mut current) = vault.get(&scope, credential)? else {
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
        match oauth::refresh(spec, &client, &current).await {
            Ok(fresh) => {
                vault.put(&scope, credential, &fresh)?;
                tracing::info!(instance = %instance.id, connection, "refreshed an OAuth access token");
                Ok(())
            }
            Err(TokenError::Refused(why)) => {
                let why = format!("the provider refused to refresh its token: {why}");
                current.failed = Some(why.clone());
                vault.put(&scope, credential, &current)?;
                tracing::warn!(instance = %instance.id, connection, "{why}");
                bail!("connection `{connection}` stopped working ({why}); {reconnect}")
            }
            Err(TokenError::Failed(why)) => bail!(
                "connection `{connection}`: its access token expired and could not be refreshed ({why}); the run can be tried again"
            ),
        }
    }
}
