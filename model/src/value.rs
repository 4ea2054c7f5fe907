//! Values that flow between steps: JSON, or bytes with a content type.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

/// A step input or result as the host holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// A JSON value.
    Json(Json),
    /// Binary data, such as a downloaded image.
    Bytes {
        /// The media type of `data`.
        content_type: String,
        /// The bytes.
        data: Vec<u8>,
    },
}

impl Val {
    /// How many bytes the value takes when handed to or from a plugin.
    pub fn wire_size(&self) -> usize {
        match self {
            Val::Json(v) => v.to_string().len(),
            Val::Bytes { content_type, data } => content_type.len() + data.len(),
        }
    }

    /// The value as it is written into a run record: JSON as-is, bytes as a summary (size,
    /// content type and digest) so that large binaries do not bloat the store.
    pub fn to_record(&self) -> RecordedValue {
        match self {
            Val::Json(v) => RecordedValue::Json(v.clone()),
            Val::Bytes { content_type, data } => RecordedValue::Bytes(BytesSummary {
                content_type: content_type.clone(),
                size: data.len() as u64,
                sha256: hex::encode(Sha256::digest(data)),
            }),
        }
    }
}

/// A value in a run record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordedValue {
    /// A JSON value, stored whole.
    Json(Json),
    /// Binary data, stored as a summary.
    Bytes(BytesSummary),
}

impl RecordedValue {
    /// A one-line description for tables: JSON text (shortened) or `<image/png, 1234 bytes>`.
    pub fn short(&self, max: usize) -> String {
        match self {
            RecordedValue::Json(v) => {
                let text = v.to_string();
                if text.chars().count() > max {
                    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
                    format!("{cut}…")
                } else {
                    text
                }
            }
            RecordedValue::Bytes(b) => format!("<{}, {} bytes>", b.content_type, b.size),
        }
    }
}

/// What a run record keeps of a binary value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BytesSummary {
    /// The media type.
    pub content_type: String,
    /// The length in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
}
