//! The claims of a workspace JWT whose signature verified, checked as RFC 7519 §4.1 and
//! RFC 8725 ask: every registered claim a token carries is checked for its JSON type and its
//! meaning, not only the ones Weft needs.
//!
//! | claim | rule |
//! |---|---|
//! | `iss` | required; a string equal to the workspace key |
//! | `exp` | required; a NumericDate (any JSON number, fractions allowed), not past (30 s leeway) |
//! | `nbf` | if present, a NumericDate not in the future (30 s leeway) |
//! | `iat` | if present, a NumericDate not in the future (30 s leeway) |
//! | `aud` | if present, a string or an array of strings that names the workspace's `audience`; a token with `aud` is refused by a workspace without one (RFC 7519 §4.1.3). A workspace with an `audience` requires `aud` |
//! | `sub`, `jti` | if present, strings |
//! | `id` | a customer id: 1–128 characters of `A–Z a–z 0–9 . _ - : @ +` |
//! | `name` | if present, a string of at most 256 characters |
//! | `fields` | if present, an object |
//! | `isAdmin` | admin when `true`, a number other than 0, or a non-empty string (except `"false"`, `"0"` and `"no"`, which are refused as ambiguous); absent, `null`, `false`, `0` and `""` mean not admin; arrays and objects are refused |

use serde_json::{Map, Value as Json};

use super::{AuthError, LEEWAY_SECONDS, Principal, fail};

/// The longest customer id accepted.
pub const MAX_CUSTOMER_ID: usize = 128;
/// The longest `name` accepted.
const MAX_NAME: usize = 256;

/// What the workspace expects of the claims.
#[derive(Debug, Clone, Copy)]
pub(super) struct Expected<'a> {
    /// The workspace key, which `iss` must equal.
    pub issuer: &'a str,
    /// The audience `aud` must name, if the workspace has one.
    pub audience: Option<&'a str>,
    /// Now, in seconds since the Unix epoch.
    pub now: u64,
}

/// Whether `id` can be a customer id: 1–128 characters, ASCII letters, digits and `._-:@+`.
pub fn check_customer_id(id: &str) -> Result<(), AuthError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-:@+".contains(c);
    if id.is_empty() || id.len() > MAX_CUSTOMER_ID || !id.chars().all(allowed) {
        return Err(fail(
            "bad_claims",
            format!(
                "a customer id is 1 to {MAX_CUSTOMER_ID} characters of letters, digits and `._-:@+`"
            ),
        ));
    }
    Ok(())
}

fn string_claim<'p>(
    payload: &'p Map<String, Json>,
    name: &str,
) -> Result<Option<&'p str>, AuthError> {
    match payload.get(name) {
        None => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(_) => Err(fail("bad_claims", format!("`{name}` must be a string"))),
    }
}

/// A NumericDate claim: any JSON number of seconds (RFC 7519 §2 allows fractions).
fn date_claim(payload: &Map<String, Json>, name: &str) -> Result<Option<f64>, AuthError> {
    match payload.get(name) {
        None => Ok(None),
        Some(Json::Number(n)) => n
            .as_f64()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or_else(|| fail("bad_claims", format!("`{name}` is not a usable number"))),
        Some(_) => Err(fail(
            "bad_claims",
            format!("`{name}` must be a number of seconds since the Unix epoch (a NumericDate)"),
        )),
    }
}

/// Whether `isAdmin` makes the token an admin's.
fn is_admin(value: Option<&Json>) -> Result<bool, AuthError> {
    match value {
        None | Some(Json::Null) | Some(Json::Bool(false)) => Ok(false),
        Some(Json::Bool(true)) => Ok(true),
        Some(Json::Number(n)) => Ok(n.as_f64() != Some(0.0)),
        Some(Json::String(s)) if s.is_empty() => Ok(false),
        Some(Json::String(s))
            if ["false", "0", "no"].contains(&s.trim().to_ascii_lowercase().as_str()) =>
        {
            Err(fail(
                "bad_claims",
                "`isAdmin` is a string that reads as \"no\"; leave the claim out (or make it false) for a customer, make it true for an admin",
            ))
        }
        Some(Json::String(_)) => Ok(true),
        Some(_) => Err(fail(
            "bad_claims",
            "`isAdmin` must be true, false, a number or a string",
        )),
    }
}

/// Checks `payload` against `expected`; who the token speaks for.
pub(super) fn check(
    payload: &Map<String, Json>,
    expected: Expected<'_>,
) -> Result<Principal, AuthError> {
    let now = expected.now as f64;
    let leeway = LEEWAY_SECONDS as f64;

    match string_claim(payload, "iss")? {
        None => return Err(fail("missing_claim", "the token has no `iss` claim")),
        Some(iss) if iss != expected.issuer => {
            return Err(fail("wrong_issuer", "`iss` is not this workspace's key"));
        }
        Some(_) => {}
    }
    let exp = date_claim(payload, "exp")?
        .ok_or_else(|| fail("missing_claim", "the token has no `exp` claim"))?;
    if now >= exp + leeway {
        return Err(fail("expired", "the token has expired"));
    }
    if let Some(nbf) = date_claim(payload, "nbf")?
        && now + leeway < nbf
    {
        return Err(fail(
            "not_yet_valid",
            "the token is not valid yet (`nbf` is in the future)",
        ));
    }
    if let Some(iat) = date_claim(payload, "iat")?
        && iat > now + leeway
    {
        return Err(fail("bad_claims", "`iat` is in the future"));
    }
    string_claim(payload, "sub")?;
    string_claim(payload, "jti")?;
    check_audience(payload.get("aud"), expected.audience)?;

    let admin = is_admin(payload.get("isAdmin"))?;
    let name = string_claim(payload, "name")?.map(str::to_string);
    if name.as_ref().is_some_and(|n| n.chars().count() > MAX_NAME) {
        return Err(fail(
            "bad_claims",
            format!("`name` is longer than {MAX_NAME} characters"),
        ));
    }
    let fields = match payload.get("fields") {
        None => Map::new(),
        Some(Json::Object(fields)) => fields.clone(),
        Some(_) => return Err(fail("bad_claims", "`fields` must be an object")),
    };
    match (admin, payload.get("id")) {
        (true, Some(_)) => Err(fail(
            "bad_claims",
            "a token may carry `id` (a customer) or `isAdmin`, not both",
        )),
        (true, None) => Ok(Principal::Admin { name }),
        (false, Some(Json::String(id))) => {
            check_customer_id(id)?;
            Ok(Principal::Customer {
                id: id.clone(),
                name,
                fields,
            })
        }
        (false, Some(_)) => Err(fail("bad_claims", "`id` must be a string")),
        (false, None) => Err(fail(
            "missing_claim",
            "the token has neither `id` (a customer) nor `isAdmin`",
        )),
    }
}

/// `aud`, as RFC 7519 §4.1.3 says: a token naming audiences is for one of them only.
fn check_audience(aud: Option<&Json>, audience: Option<&str>) -> Result<(), AuthError> {
    let named: Vec<&str> = match aud {
        None => Vec::new(),
        Some(Json::String(one)) => vec![one.as_str()],
        Some(Json::Array(many)) => many
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| fail("bad_claims", "`aud` must be a string or strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(fail(
                "bad_claims",
                "`aud` must be a string or an array of strings",
            ));
        }
    };
    match (audience, aud.is_some()) {
        (None, false) => Ok(()),
        (None, true) => Err(fail(
            "wrong_audience",
            "the token names an audience (`aud`), but this workspace has none; set `[auth] audience` or leave `aud` out of its tokens",
        )),
        (Some(_), false) => Err(fail(
            "missing_claim",
            "the token has no `aud` claim; this workspace requires its audience",
        )),
        (Some(ours), true) if named.contains(&ours) => Ok(()),
        (Some(_), true) => Err(fail(
            "wrong_audience",
            "`aud` does not name this workspace's audience",
        )),
    }
}
