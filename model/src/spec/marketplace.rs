//! What the embedded marketplace needs from the files: how an integration is offered
//! (`marketplace = { … }`), the accounts a customer connects (`[connections.NAME]`), and how the
//! workspace lets apps embed it (`[embed]`: origins, theme, strings).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::credential::{CredentialSpec, Kind};

/// `marketplace = { listed = true, category, icon, description }` in an integration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketplaceSpec {
    /// Offer it to customers.
    #[serde(default)]
    pub listed: bool,
    /// The heading it is listed under.
    #[serde(default)]
    pub category: Option<String>,
    /// An SVG or PNG file beside the integration file; replaced by its `data:` URL when the
    /// file is loaded, so a published version keeps its icon.
    #[serde(default)]
    pub icon: Option<String>,
    /// What it does, for customers (default: the integration's description).
    #[serde(default)]
    pub description: Option<String>,
    /// The wizard's pages, in order; without them every var customers may set is on one page.
    #[serde(default)]
    pub pages: Vec<PageSpec>,
}

/// One page of the config wizard.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageSpec {
    /// Its heading.
    pub title: String,
    /// A sentence under the heading.
    #[serde(default)]
    pub description: Option<String>,
    /// The config vars on it, in order.
    #[serde(default)]
    pub vars: Vec<String>,
}

/// The kinds of account a customer can connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionKind {
    /// One key, sent in a header or query parameter.
    ApiKey,
    /// A key id and a secret (an AWS access key).
    ApiKeySecret,
    /// A user name and a password.
    Basic,
    /// A bearer token.
    Bearer,
    /// OAuth 2.0 authorization code with PKCE: the customer signs in at the provider in a
    /// popup; the host keeps the tokens and refreshes them.
    Oauth2,
    /// OAuth 2.0 client credentials (server to server): the customer gives its client id and
    /// secret; the host fetches access tokens with them.
    Oauth2ClientCredentials,
}

impl ConnectionKind {
    /// The fields a customer fills in, and whether each is secret.
    pub fn fields(self) -> &'static [(&'static str, bool)] {
        match self {
            ConnectionKind::ApiKey => &[("key", true)],
            ConnectionKind::ApiKeySecret => &[("key", false), ("secret", true)],
            ConnectionKind::Basic => &[("username", false), ("password", true)],
            ConnectionKind::Bearer => &[("token", true)],
            ConnectionKind::Oauth2 => &[],
            ConnectionKind::Oauth2ClientCredentials => {
                &[("client_id", false), ("client_secret", true)]
            }
        }
    }

    /// Whether the host obtains OAuth 2.0 tokens for it.
    pub fn is_oauth(self) -> bool {
        matches!(
            self,
            ConnectionKind::Oauth2 | ConnectionKind::Oauth2ClientCredentials
        )
    }

    /// The name used in files.
    pub fn name(self) -> &'static str {
        match self {
            ConnectionKind::Oauth2 => "oauth2",
            ConnectionKind::Oauth2ClientCredentials => "oauth2-client-credentials",
            other => other.credential_kind().name(),
        }
    }

    fn credential_kind(self) -> Kind {
        match self {
            ConnectionKind::ApiKey => Kind::ApiKey,
            ConnectionKind::ApiKeySecret => Kind::ApiKeySecret,
            ConnectionKind::Basic => Kind::Basic,
            ConnectionKind::Bearer => Kind::Bearer,
            ConnectionKind::Oauth2 | ConnectionKind::Oauth2ClientCredentials => Kind::Oauth2,
        }
    }
}

/// The name of the credential that holds connection `name` of instance `instance` (stored at
/// the customer's scope, and bound to the instance's steps that use the connection).
pub fn connection_credential(name: &str, instance: &str) -> String {
    format!("{name}@{instance}")
}

/// The connection a credential name made by [`connection_credential`] is for.
pub fn connection_of(credential: &str) -> Option<&str> {
    credential.split_once('@').map(|(name, _)| name)
}

/// `[connections.NAME]`: an account the customer connects for a self-service instance. Steps
/// with `credential = "NAME"` then use it, applied by the host as any credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    /// The kind of account.
    pub kind: ConnectionKind,
    /// What the customer sees (default: the name).
    #[serde(default)]
    pub label: Option<String>,
    /// A sentence saying where to find the key.
    #[serde(default)]
    pub description: Option<String>,
    /// Origins the credential may be sent to; empty: the hosts granted to the plugin.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `api-key`: the header to send the key in (default `X-API-Key`).
    #[serde(default)]
    pub header: Option<String>,
    /// `api-key`: send the key as this query parameter instead.
    #[serde(default)]
    pub query: Option<String>,
    /// `oauth2`: the provider's authorization endpoint.
    #[serde(default)]
    pub authorize_url: Option<String>,
    /// `oauth2`, `oauth2-client-credentials`: the provider's token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The scopes asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `oauth2`: the client id the integration is registered with at the provider.
    #[serde(default)]
    pub client_id: Option<String>,
    /// `oauth2`: the client secret, as `env:NAME` or `file:PATH` (none for a public client,
    /// which PKCE alone protects).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// `oauth2`: extra parameters of the authorization request (`prompt = "consent"`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

impl ConnectionSpec {
    /// The credential made of the fields a customer filled in, or which field is missing.
    pub fn credential(&self, fields: &Map<String, Json>) -> Result<CredentialSpec, String> {
        let mut spec = CredentialSpec {
            hosts: self.hosts.clone(),
            header: self.header.clone(),
            query: self.query.clone(),
            ..CredentialSpec::empty(self.kind.credential_kind())
        };
        if self.kind == ConnectionKind::Oauth2 {
            return Err(
                "an `oauth2` connection is made by signing in at the provider (Connect), not with fields"
                    .into(),
            );
        }
        for (field, _) in self.kind.fields() {
            let value = fields
                .get(*field)
                .and_then(Json::as_str)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("`{field}` is required"))?
                .to_string();
            match *field {
                "key" => spec.key = Some(value),
                "secret" => spec.secret = Some(value),
                "username" => spec.username = Some(value),
                "password" => spec.password = Some(value),
                "client_id" => spec.key = Some(value),
                "client_secret" => spec.secret = Some(value),
                _ => spec.token = Some(value),
            }
        }
        if let Some(extra) = fields
            .keys()
            .find(|k| !self.kind.fields().iter().any(|(f, _)| f == k))
        {
            return Err(format!(
                "`{extra}` is not a field of a {} connection",
                self.kind.name()
            ));
        }
        Ok(spec)
    }
}

/// The marketplace's strings in English, by key: what `[embed.strings]` may replace.
pub fn marketplace_strings() -> BTreeMap<String, String> {
    toml::from_str(include_str!("marketplace_strings.toml"))
        .expect("the built-in marketplace strings are a TOML table of strings")
}

/// `[embed]` in the workspace file: who may frame the marketplace and how it looks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedSpec {
    /// Origins of the apps allowed to embed the marketplace (`https://app.example.com`): sent
    /// as CSP `frame-ancestors`, and the only origins the page takes a token from. Empty: no
    /// app may embed it.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Colours, font and corner radius.
    #[serde(default)]
    pub theme: ThemeSpec,
    /// Replacements for the page's strings, by key (see the README for the keys).
    #[serde(default)]
    pub strings: BTreeMap<String, String>,
    /// Where browsers reach `weft serve` (`https://weft.example.com`): OAuth providers redirect
    /// to `{public_url}/marketplace/oauth/callback`. Default: the address the marketplace was loaded from.
    #[serde(default)]
    pub public_url: Option<String>,
}

/// The marketplace's look, as CSS variables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThemeSpec {
    /// `light` (default) or `dark`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Buttons and links: `#rrggbb`.
    #[serde(default)]
    pub accent: Option<String>,
    /// The page's background: `#rrggbb`.
    #[serde(default)]
    pub background: Option<String>,
    /// Text: `#rrggbb`.
    #[serde(default)]
    pub text: Option<String>,
    /// A font family list: `"Inter", sans-serif`.
    #[serde(default)]
    pub font: Option<String>,
    /// Corner radius: `6px`, `0.5rem`.
    #[serde(default)]
    pub radius: Option<String>,
}

impl ThemeSpec {
    /// What is wrong with the theme, a line each. Values end up in a style sheet, so each is
    /// held to its form rather than passed through.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(mode) = &self.mode
            && mode != "light"
            && mode != "dark"
        {
            out.push(format!("`mode` is `light` or `dark`, not `{mode}`"));
        }
        for (field, value) in [
            ("accent", &self.accent),
            ("background", &self.background),
            ("text", &self.text),
        ] {
            if let Some(v) = value
                && !is_hex_colour(v)
            {
                out.push(format!(
                    "`{field}` must be a colour like `#1f6feb`, not `{v}`"
                ));
            }
        }
        if let Some(font) = &self.font
            && !font
                .chars()
                .all(|c| c.is_alphanumeric() || " ,-_\"'".contains(c))
        {
            out.push(format!(
                "`font` must be a list of font names (letters, digits, spaces, quotes, commas), not `{font}`"
            ));
        }
        if let Some(radius) = &self.radius
            && !is_length(radius)
        {
            out.push(format!(
                "`radius` must be a length like `6px` or `0.5rem`, not `{radius}`"
            ));
        }
        out
    }
}

fn is_hex_colour(text: &str) -> bool {
    text.strip_prefix('#')
        .is_some_and(|hex| matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_length(text: &str) -> bool {
    let number = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[number.len()..];
    matches!(unit, "px" | "rem" | "em")
        && !number.is_empty()
        && number
            .parse::<f32>()
            .is_ok_and(|n| (0.0..=64.0).contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_connection_becomes_the_credential_of_its_kind() {
        let c: ConnectionSpec =
            toml::from_str("kind = \"api-key-secret\"\nhosts = [\"http://127.0.0.1:9000\"]")
                .unwrap();
        let fields = json!({ "key": "AKIA", "secret": "s3cr3t" });
        let spec = c.credential(fields.as_object().unwrap()).unwrap();
        assert_eq!(spec.kind, Kind::ApiKeySecret);
        assert_eq!(spec.key.as_deref(), Some("AKIA"));
        assert_eq!(spec.secret.as_deref(), Some("s3cr3t"));
        assert_eq!(spec.hosts, ["http://127.0.0.1:9000"]);
        let missing = json!({ "key": "AKIA" });
        assert_eq!(
            c.credential(missing.as_object().unwrap()).unwrap_err(),
            "`secret` is required"
        );
        let extra = json!({ "key": "a", "secret": "b", "token": "c" });
        assert!(c.credential(extra.as_object().unwrap()).is_err());
    }

    #[test]
    fn theme_values_that_could_escape_a_style_sheet_are_refused() {
        let ok = ThemeSpec {
            mode: Some("dark".into()),
            accent: Some("#1f6feb".into()),
            font: Some("\"Inter\", sans-serif".into()),
            radius: Some("0.5rem".into()),
            ..Default::default()
        };
        assert!(ok.problems().is_empty());
        let bad = ThemeSpec {
            accent: Some("red;}body{display:none".into()),
            font: Some("x;}</style>".into()),
            radius: Some("1px;".into()),
            ..Default::default()
        };
        assert_eq!(bad.problems().len(), 3);
    }
}
