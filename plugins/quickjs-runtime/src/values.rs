//! `weft:step` values to JavaScript and back, in the shapes the step's `runtime.js` uses: a
//! value is `{ tag: 'json', val: text }` or `{ tag: 'bytes', val: { contentType, data } }`, and a
//! step error is the `{ kind, message, retryable }` object the runtime throws.

use rquickjs::{Array, Ctx, Object, TypedArray, Value};

use crate::weft::step::types::{Blob, ErrorKind, StepError, Value as StepValue};

/// The step's inputs as an array of `[name, value]`.
pub fn inputs<'js>(
    ctx: &Ctx<'js>,
    inputs: Vec<(String, StepValue)>,
) -> rquickjs::Result<Array<'js>> {
    let array = Array::new(ctx.clone())?;
    for (i, (name, value)) in inputs.into_iter().enumerate() {
        let pair = Array::new(ctx.clone())?;
        pair.set(0, name)?;
        pair.set(1, to_js(ctx, value)?)?;
        array.set(i, pair)?;
    }
    Ok(array)
}

/// A value to `{ tag, val }`.
pub fn to_js<'js>(ctx: &Ctx<'js>, value: StepValue) -> rquickjs::Result<Object<'js>> {
    let object = Object::new(ctx.clone())?;
    match value {
        StepValue::Json(text) => {
            object.set("tag", "json")?;
            object.set("val", text)?;
        }
        StepValue::Bytes(blob) => {
            let val = Object::new(ctx.clone())?;
            val.set("contentType", blob.content_type)?;
            val.set("data", TypedArray::<u8>::new(ctx.clone(), blob.data)?)?;
            object.set("tag", "bytes")?;
            object.set("val", val)?;
        }
    }
    Ok(object)
}

/// What `run` returned, once its promise (if it returned one) settled.
pub fn settled<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> Result<StepValue, StepError> {
    let Some(promise) = value.as_promise() else {
        return from_js(&value);
    };
    match promise.result::<Value>() {
        None => Err(StepError {
            kind: ErrorKind::Internal,
            message: "the step's promise never settled: it waits on something that cannot happen in a step (a timer, or a promise nothing resolves)".into(),
            retryable: false,
        }),
        Some(Ok(value)) => from_js(&value),
        Some(Err(rquickjs::Error::Exception)) => Err(thrown(ctx, ctx.catch())),
        Some(Err(e)) => Err(internal(e.to_string())),
    }
}

fn from_js(value: &Value<'_>) -> Result<StepValue, StepError> {
    let shape = || internal("the runtime returned a value that is not `{ tag, val }`".into());
    let object = value.as_object().ok_or_else(shape)?;
    let tag: String = object.get("tag").map_err(|_| shape())?;
    match tag.as_str() {
        "json" => Ok(StepValue::Json(object.get("val").map_err(|_| shape())?)),
        "bytes" => {
            let val: Object = object.get("val").map_err(|_| shape())?;
            let data: TypedArray<u8> = val.get("data").map_err(|_| shape())?;
            Ok(StepValue::Bytes(Blob {
                content_type: val.get("contentType").map_err(|_| shape())?,
                // SAFETY: the slice is copied at once; no JavaScript runs while it is alive.
                data: unsafe { data.as_bytes() }.unwrap_or_default().to_vec(),
            }))
        }
        _ => Err(shape()),
    }
}

/// An exception thrown while the modules were evaluated, as the build reports it: a module
/// that does not parse as `Failed to declare JavaScript module: Error: MESSAGE` and its place,
/// anything else as `NAME: MESSAGE` and its stack.
pub fn exception_report(value: &Value<'_>) -> String {
    let Some(exception) = value.as_exception() else {
        return format!("Failed to evaluate user JavaScript module: uncaught {value:?}");
    };
    let name: String = exception.get("name").unwrap_or_else(|_| "Error".into());
    let message = exception.message().unwrap_or_default();
    let stack = exception.stack().unwrap_or_default();
    if name == "SyntaxError" {
        format!("Failed to declare JavaScript module: Error: {message}\n{stack}")
    } else {
        format!("Failed to evaluate user JavaScript module: {name}: {message}\n{stack}")
    }
}

/// What the step threw: the runtime's `{ kind, message, retryable }`, or anything else.
pub fn thrown(_ctx: &Ctx<'_>, value: Value<'_>) -> StepError {
    if let Some(exception) = value.as_exception() {
        let name: String = exception.get("name").unwrap_or_else(|_| "Error".into());
        let message = exception.message().unwrap_or_default();
        let stack = exception.stack().unwrap_or_default();
        return internal(format!("{name}: {message}\n{stack}").trim_end().to_string());
    }
    if let Some(object) = value.as_object()
        && let (Ok(kind), Ok(message)) = (
            object.get::<_, String>("kind"),
            object.get::<_, String>("message"),
        )
    {
        return StepError {
            kind: match kind.as_str() {
                "invalid-input" => ErrorKind::InvalidInput,
                "denied" => ErrorKind::Denied,
                "upstream" => ErrorKind::Upstream,
                "timeout" => ErrorKind::Timeout,
                _ => ErrorKind::Internal,
            },
            message,
            retryable: object.get::<_, bool>("retryable").unwrap_or(false),
        };
    }
    let text = value
        .as_string()
        .and_then(|s| s.to_string().ok())
        .unwrap_or_else(|| format!("{value:?}"));
    internal(format!("the step threw {text}"))
}

fn internal(message: String) -> StepError {
    StepError {
        kind: ErrorKind::Internal,
        message,
        retryable: false,
    }
}
