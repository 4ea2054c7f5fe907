//! The host's interfaces as JavaScript objects under `globalThis.__weft_host`, in the shapes the
//! step's `runtime.js` uses: records as objects with camelCase fields, `list<u8>` as
//! `Uint8Array`, and an `err` result thrown as the error variant `{ tag, val }`.
//!
//! `http`, `s3` and `state` are compiled in only with the feature of the same name, so a step's
//! component imports exactly the interfaces it asked for and needs no other grant.

use rquickjs::{Ctx, Function, Object, Result};

use crate::weft::step::{config, log};

/// Defines `__weft_host` on the context's global object.
pub fn install(ctx: &Ctx<'_>) -> Result<()> {
    let host = Object::new(ctx.clone())?;
    host.set("config", config_object(ctx)?)?;
    host.set("log", log_object(ctx)?)?;
    #[cfg(feature = "http")]
    host.set("http", http::object(ctx)?)?;
    #[cfg(feature = "s3")]
    host.set("s3", s3::object(ctx)?)?;
    #[cfg(feature = "state")]
    host.set("state", state::object(ctx)?)?;
    ctx.globals().set("__weft_host", host)
}

fn config_object<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    let object = Object::new(ctx.clone())?;
    object.set(
        "get",
        Function::new(ctx.clone(), |name: String| config::get(&name))?,
    )?;
    object.set("names", Function::new(ctx.clone(), config::names)?)?;
    Ok(object)
}

fn log_object<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    let object = Object::new(ctx.clone())?;
    object.set(
        "log",
        Function::new(ctx.clone(), |level: String, message: String| {
            let level = match level.as_str() {
                "debug" => log::Level::Debug,
                "warn" => log::Level::Warn,
                "error" => log::Level::Error,
                _ => log::Level::Info,
            };
            log::log(level, &message);
        })?,
    )?;
    Ok(object)
}

/// Throws the error variant `{ tag, val }` of a host call's `err` result.
#[cfg(any(feature = "http", feature = "s3", feature = "state"))]
fn throw_variant<'js, V: rquickjs::IntoJs<'js>>(
    ctx: &Ctx<'js>,
    tag: &str,
    val: V,
) -> rquickjs::Error {
    let thrown = Object::new(ctx.clone()).and_then(|object| {
        object.set("tag", tag)?;
        object.set("val", val)?;
        Ok(object)
    });
    match thrown {
        Ok(object) => ctx.throw(object.into_value()),
        Err(error) => error,
    }
}

/// The bytes of a `Uint8Array` argument.
#[cfg(any(feature = "http", feature = "s3", feature = "state"))]
fn bytes(array: &rquickjs::TypedArray<'_, u8>) -> Vec<u8> {
    // SAFETY: the slice is copied at once; no JavaScript runs while it is alive.
    unsafe { array.as_bytes() }.unwrap_or_default().to_vec()
}

/// `[[name, value], ...]` as pairs.
#[cfg(any(feature = "http", feature = "s3"))]
fn pairs(list: Option<Vec<Vec<String>>>) -> Vec<(String, String)> {
    list.unwrap_or_default()
        .into_iter()
        .filter_map(|pair| match <[String; 2]>::try_from(pair) {
            Ok([name, value]) => Some((name, value)),
            Err(_) => None,
        })
        .collect()
}

#[cfg(feature = "http")]
mod http {
    use rquickjs::{Ctx, Function, Object, Result, TypedArray};

    use super::{bytes, pairs, throw_variant};
    use crate::weft::step::http::{self, HttpError, Request};

    pub fn object<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
        let object = Object::new(ctx.clone())?;
        object.set("send", Function::new(ctx.clone(), send)?)?;
        Ok(object)
    }

    fn send<'js>(ctx: Ctx<'js>, request: Object<'js>) -> Result<Object<'js>> {
        let body: Option<TypedArray<u8>> = request.get("body")?;
        let request = Request {
            method: request.get("method")?,
            url: request.get("url")?,
            headers: pairs(request.get("headers")?),
            body: body.as_ref().map(bytes),
            timeout_ms: request.get("timeoutMs")?,
            follow_redirects: request
                .get::<_, Option<bool>>("followRedirects")?
                .unwrap_or(true),
        };
        match http::send(&request) {
            Ok(response) => {
                let object = Object::new(ctx.clone())?;
                object.set("status", response.status)?;
                let headers: Vec<Vec<String>> = response
                    .headers
                    .into_iter()
                    .map(|(name, value)| vec![name, value])
                    .collect();
                object.set("headers", headers)?;
                object.set("body", TypedArray::<u8>::new(ctx.clone(), response.body)?)?;
                Ok(object)
            }
            Err(error) => Err(match error {
                HttpError::Denied(m) => throw_variant(&ctx, "denied", m),
                HttpError::Timeout(m) => throw_variant(&ctx, "timeout", m),
                HttpError::Connection(m) => throw_variant(&ctx, "connection", m),
                HttpError::TooLarge(m) => throw_variant(&ctx, "too-large", m),
                HttpError::Invalid(m) => throw_variant(&ctx, "invalid", m),
            }),
        }
    }
}

#[cfg(feature = "s3")]
mod s3 {
    use rquickjs::{Ctx, Function, Object, Result, TypedArray};

    use super::{bytes, pairs, throw_variant};
    use crate::weft::step::s3::{self, PutObjectRequest, S3Error};

    pub fn object<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
        let object = Object::new(ctx.clone())?;
        object.set("putObject", Function::new(ctx.clone(), put_object)?)?;
        Ok(object)
    }

    fn put_object<'js>(ctx: Ctx<'js>, request: Object<'js>) -> Result<Object<'js>> {
        let body: Option<TypedArray<u8>> = request.get("body")?;
        let request = PutObjectRequest {
            region: request.get("region")?,
            bucket: request.get("bucket")?,
            key: request.get("key")?,
            body: body.as_ref().map(bytes).unwrap_or_default(),
            content_type: request.get("contentType")?,
            tags: pairs(request.get("tags")?),
            metadata: pairs(request.get("metadata")?),
            endpoint: request.get("endpoint")?,
            path_style: request
                .get::<_, Option<bool>>("pathStyle")?
                .unwrap_or(false),
        };
        match s3::put_object(&request) {
            Ok(output) => {
                let object = Object::new(ctx.clone())?;
                object.set("etag", output.etag)?;
                object.set("versionId", output.version_id)?;
                object.set("location", output.location)?;
                Ok(object)
            }
            Err(error) => Err(match error {
                S3Error::Denied(m) => throw_variant(&ctx, "denied", m),
                S3Error::Timeout(m) => throw_variant(&ctx, "timeout", m),
                S3Error::Connection(m) => throw_variant(&ctx, "connection", m),
                S3Error::Invalid(m) => throw_variant(&ctx, "invalid", m),
                S3Error::Service(service) => {
                    let val = Object::new(ctx.clone())?;
                    val.set("code", service.code)?;
                    val.set("message", service.message)?;
                    val.set("status", service.status)?;
                    throw_variant(&ctx, "service", val)
                }
            }),
        }
    }
}

#[cfg(feature = "state")]
mod state {
    use rquickjs::{Ctx, Function, Object, Result, TypedArray};

    use super::{bytes, throw_variant};
    use crate::weft::step::state::{self, Scope, StateError};

    pub fn object<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
        let object = Object::new(ctx.clone())?;
        object.set("get", Function::new(ctx.clone(), get)?)?;
        object.set("set", Function::new(ctx.clone(), set)?)?;
        object.set("delete", Function::new(ctx.clone(), delete)?)?;
        Ok(object)
    }

    fn scope(name: &str) -> Scope {
        if name == "instance" {
            Scope::Instance
        } else {
            Scope::Flow
        }
    }

    fn get<'js>(
        ctx: Ctx<'js>,
        scope_name: String,
        key: String,
    ) -> Result<Option<TypedArray<'js, u8>>> {
        state::get(scope(&scope_name), &key)
            .map(|value| TypedArray::<u8>::new(ctx, value))
            .transpose()
    }

    fn set<'js>(
        ctx: Ctx<'js>,
        scope_name: String,
        key: String,
        value: TypedArray<'js, u8>,
    ) -> Result<()> {
        state::set(scope(&scope_name), &key, &bytes(&value)).map_err(|error| match error {
            StateError::TooLarge(m) => throw_variant(&ctx, "too-large", m),
            StateError::Unavailable(m) => throw_variant(&ctx, "unavailable", m),
        })
    }

    fn delete(scope_name: String, key: String) {
        state::delete(scope(&scope_name), &key);
    }
}
