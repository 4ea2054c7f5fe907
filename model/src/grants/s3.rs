//! What a plugin may do with S3: the buckets (and key prefixes) it may write to and the
//! S3-compatible endpoints it may use. Enforced by the host's `weft:step/s3`.

use std::fmt;

use super::http::{AddressPolicy, HostPattern};

/// One granted bucket, optionally narrowed to keys under a prefix: `avatars`,
/// `exports/reports/`, or `*` for any bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketGrant {
    /// `None` for any bucket.
    bucket: Option<String>,
    /// Keys must start with this; empty for any key.
    prefix: String,
}

impl fmt::Display for BucketGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.bucket {
            None => f.write_str("*"),
            Some(b) if self.prefix.is_empty() => f.write_str(b),
            Some(b) => write!(f, "{b}/{}", self.prefix),
        }
    }
}

impl BucketGrant {
    /// Parses `bucket`, `bucket/prefix` or `*`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Ok(Self {
                bucket: None,
                prefix: String::new(),
            });
        }
        let (bucket, prefix) = text.split_once('/').unwrap_or((text, ""));
        if bucket.is_empty() || bucket.contains('*') {
            return Err(format!(
                "`{text}` is not a bucket grant; write a bucket name (`avatars`), a bucket and a key prefix (`avatars/customers/`), or `*` for any bucket"
            ));
        }
        Ok(Self {
            bucket: Some(bucket.to_string()),
            prefix: prefix.to_string(),
        })
    }

    /// Whether everything `other` allows, this allows too.
    pub fn covers(&self, other: &BucketGrant) -> bool {
        match (&self.bucket, &other.bucket) {
            (None, _) => true,
            (Some(a), Some(b)) => a == b && other.prefix.starts_with(&self.prefix),
            (Some(_), None) => false,
        }
    }

    /// Whether the grant covers writing `key` into `bucket`.
    pub fn allows(&self, bucket: &str, key: &str) -> bool {
        self.bucket.as_deref().is_none_or(|b| b == bucket) && key.starts_with(&self.prefix)
    }
}

/// What a plugin may do with S3, from its `s3` grant in the workspace file.
#[derive(Debug, Clone, Default)]
pub struct S3Grant {
    /// Buckets (and key prefixes) it may write to.
    pub buckets: Vec<BucketGrant>,
    /// Endpoints of S3-compatible stores it may use; Amazon S3 itself needs none.
    pub endpoints: Vec<HostPattern>,
    /// Which special addresses it may connect to.
    pub addresses: AddressPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_grants() {
        let whole = BucketGrant::parse("avatars").unwrap();
        assert!(whole.allows("avatars", "a/b.png"));
        assert!(!whole.allows("avatars2", "a.png"));
        let prefix = BucketGrant::parse("exports/reports/").unwrap();
        assert!(prefix.allows("exports", "reports/2026.csv"));
        assert!(!prefix.allows("exports", "other/2026.csv"));
        assert_eq!(prefix.to_string(), "exports/reports/");
        assert!(BucketGrant::parse("*").unwrap().allows("any", "thing"));
        assert!(BucketGrant::parse("ava*").is_err());
        assert!(BucketGrant::parse("/x").is_err());
    }
}
