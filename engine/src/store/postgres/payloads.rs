//! Large payloads in S3: records, binary values and queued requests over a threshold are put in
//! a bucket, content-addressed, and their rows hold a short reference instead.
//!
//! Configured on the store's URL: `?payloads=s3://BUCKET/PREFIX` (and, for an S3-compatible
//! server, `payloads_endpoint=URL`; `payloads_region=REGION`, default `us-east-1`;
//! `payloads_over=BYTES`, default 65536), signed with the standard `AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY` of the process. An object's key is `PREFIX` + the SHA-256 of its
//! bytes, so the same payload is stored once and a reference never points at other bytes.
//! Objects are written before the rows that refer to them are committed, so a committed row
//! never refers to a missing object; pruning runs leaves their objects (they may be shared):
//! expire them with a lifecycle rule on the prefix if history is pruned.
//!
//! Without the setting every payload stays in its row.

use anyhow::{Context as _, bail};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

/// What a row holds instead of a payload put in S3: this, then the payload's SHA-256 in hex.
/// Records are JSON and never start with a zero byte; a binary value that does is put in S3
/// whatever its size, so that a row starting with this is always a reference.
const REFERENCE: &[u8] = b"\0weft-payload:";

/// The default threshold: payloads over 64 KiB go to S3.
pub const DEFAULT_OVER: usize = 64 << 10;

/// The store URL's query parameters that configure payloads (removed before connecting).
const PARAMETERS: [&str; 4] = [
    "payloads",
    "payloads_endpoint",
    "payloads_region",
    "payloads_over",
];

/// Where large payloads go.
#[derive(Debug)]
pub struct Payloads {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    over: usize,
}

impl Payloads {
    /// Takes the payload settings off `url`: the URL to connect with, and the payloads'
    /// place if it names one (signed with the key in the process's environment).
    pub fn from_url(url: &str) -> anyhow::Result<(String, Option<Self>)> {
        Self::from_url_with(url, |name| std::env::var(name).ok())
    }

    /// As [`Payloads::from_url`], reading the environment with `env`.
    fn from_url_with(
        url: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<(String, Option<Self>)> {
        let (connect, ours) = split_url(url);
        if ours.is_empty() {
            return Ok((connect, None));
        }
        let get = |name: &str| {
            ours.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let Some(place) = get("payloads") else {
            bail!("the store URL sets payload options without `payloads=s3://BUCKET/PREFIX`");
        };
        let place = place.strip_prefix("s3://").with_context(|| {
            format!("`payloads={place}` in the store URL is not an `s3://BUCKET/PREFIX` URL")
        })?;
        let (bucket, prefix) = place.split_once('/').unwrap_or((place, ""));
        if bucket.is_empty() {
            bail!("`payloads=s3://…` in the store URL names no bucket");
        }
        let over = match get("payloads_over") {
            None => DEFAULT_OVER,
            Some(n) => n.parse().with_context(|| {
                format!("`payloads_over={n}` in the store URL is not a number of bytes")
            })?,
        };
        let env = |name: &str| {
            env(name).with_context(|| {
                format!("the store puts large payloads in s3://{bucket}/{prefix}, which needs {name} in the environment (the key to sign with)")
            })
        };
        let credentials = Credentials::new(
            env("AWS_ACCESS_KEY_ID")?,
            env("AWS_SECRET_ACCESS_KEY")?,
            env("AWS_SESSION_TOKEN").ok(),
            None,
            "weft-store",
        );
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(
                get("payloads_region").unwrap_or("us-east-1").to_string(),
            ))
            .credentials_provider(credentials);
        if let Some(endpoint) = get("payloads_endpoint") {
            // An S3-compatible server: buckets in the path, as they all understand.
            config = config
                .endpoint_url(endpoint.trim_end_matches('/'))
                .force_path_style(true);
        }
        let payloads = Self {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            over,
        };
        Ok((connect, Some(payloads)))
    }

    /// Where the payloads go, for messages.
    pub fn shown(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// `bytes` as its row is to hold them: a reference once they are in S3 if they are over
    /// the threshold (or look like a reference), else themselves.
    pub async fn offload(&self, bytes: &mut Vec<u8>) -> anyhow::Result<()> {
        if bytes.len() <= self.over && !bytes.starts_with(REFERENCE) {
            return Ok(());
        }
        let sha = hex::encode(Sha256::digest(&bytes[..]));
        let key = format!("{}{sha}", self.prefix);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(std::mem::take(bytes)))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
            .with_context(|| {
                format!(
                    "failed to put a large payload in s3://{}/{key}",
                    self.bucket
                )
            })?;
        *bytes = [REFERENCE, sha.as_bytes()].concat();
        Ok(())
    }

    /// The payload a row's `bytes` hold: fetched from S3 when they are a reference.
    pub async fn inline(&self, bytes: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let Some(sha) = bytes.strip_prefix(REFERENCE) else {
            return Ok(bytes);
        };
        let key = format!("{}{}", self.prefix, String::from_utf8_lossy(sha));
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
            .with_context(|| {
                format!(
                    "failed to read a large payload from s3://{}/{key}",
                    self.bucket
                )
            })?;
        let data = object
            .body
            .collect()
            .await
            .with_context(|| {
                format!(
                    "failed to read a large payload from s3://{}/{key}",
                    self.bucket
                )
            })?
            .into_bytes()
            .to_vec();
        anyhow::ensure!(
            hex::encode(Sha256::digest(&data)).as_bytes() == sha,
            "the large payload at s3://{}/{key} is not the one recorded (its SHA-256 differs)",
            self.bucket
        );
        Ok(data)
    }
}

/// A URL query parameter: name, value.
type Pair = (String, String);

/// `url` without the payload settings (to connect with), and those settings.
pub(super) fn split_url(url: &str) -> (String, Vec<Pair>) {
    let Ok(mut parsed) = url::Url::parse(url) else {
        // A key=value connection string: it has no payload settings.
        return (url.to_string(), Vec::new());
    };
    let (ours, theirs): (Vec<Pair>, Vec<Pair>) = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .partition(|(k, _)| PARAMETERS.contains(&k.as_str()));
    if ours.is_empty() {
        return (url.to_string(), ours);
    }
    if theirs.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(theirs);
    }
    (parsed.to_string(), ours)
}

/// `bytes` as a row holds them, with `payloads` if configured.
pub(super) async fn inline(payloads: Option<&Payloads>, bytes: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    match payloads {
        Some(payloads) => payloads.inline(bytes).await,
        None => Ok(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_settings_come_off_the_url_and_the_rest_stays() {
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".to_string()),
            _ => None,
        };
        let (url, payloads) = Payloads::from_url_with(
            "postgres://w:pw@db:5432/weft?sslmode=disable&payloads=s3://big/weft/&payloads_over=10",
            env,
        )
        .unwrap();
        assert_eq!(url, "postgres://w:pw@db:5432/weft?sslmode=disable");
        let payloads = payloads.unwrap();
        assert_eq!(
            (payloads.shown(), payloads.over),
            ("s3://big/weft/".into(), 10)
        );
        let (url, none) = Payloads::from_url_with("postgres://w@db/weft", env).unwrap();
        assert_eq!(url, "postgres://w@db/weft");
        assert!(none.is_none());
        let err = Payloads::from_url_with("postgres://w@db/weft?payloads_over=5", env).unwrap_err();
        assert!(
            err.to_string().contains("payloads=s3://BUCKET/PREFIX"),
            "{err}"
        );
        let err = Payloads::from_url_with("postgres://w@db/weft?payloads=big", env).unwrap_err();
        assert!(
            err.to_string().contains("not an `s3://BUCKET/PREFIX`"),
            "{err}"
        );
        let err = Payloads::from_url_with("postgres://w@db/weft?payloads=s3://big/", |_| None)
            .unwrap_err();
        assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
    }
}
