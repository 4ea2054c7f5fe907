# Weft's Python code-step runtime, written next to the step's module by `weft build`.
#
# It adapts a module that defines `run(context, inputs)` to the `weft:step` world: inputs arrive
# as plain Python values, `context` reads config vars, logs and (when the step's manifest asks
# for them) keeps state and calls HTTP and S3 through the host; the value `run` returns becomes
# the step's result, and anything it raises becomes a `step-error` carrying the traceback.
import importlib
import json
import traceback

import wit_world
from componentize_py_types import Err
from wit_world.imports import config as _config
from wit_world.imports import log as _log
from wit_world.imports import types

__WEFT_HOST_IMPORTS__

try:
    step = importlib.import_module("__WEFT_STEP_MODULE__")
except SyntaxError as e:
    caret = " " * max((e.offset or 1) - 1, 0) + "^"
    raise SystemExit(
        f"{e.filename}:{e.lineno}:{e.offset}: SyntaxError: {e.msg}\n    {(e.text or '').rstrip()}\n    {caret}"
    ) from None
if not callable(getattr(step, "run", None)):
    raise SystemExit(
        "__WEFT_STEP_FILE__ does not define a function `run`; add `def run(context, inputs): ...`"
    )

_KINDS = {
    "invalid-input": types.ErrorKind.INVALID_INPUT,
    "denied": types.ErrorKind.DENIED,
    "upstream": types.ErrorKind.UPSTREAM,
    "timeout": types.ErrorKind.TIMEOUT,
    "internal": types.ErrorKind.INTERNAL,
}


class StepError(Exception):
    """An error with a step-error kind; `retryable` tells the host a retry may succeed."""

    def __init__(self, message, kind="internal", retryable=False):
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable


def _unavailable(capability):
    def fail(*_args, **_kwargs):
        raise StepError(
            f"this step was built without the `{capability}` import; request it in the step's "
            "manifest (capabilities) and run `weft build` again",
            kind="denied",
        )

    return fail


def _host_error(what, error):
    value = getattr(error, "value", None)
    detail = getattr(value, "value", value)
    # `HttpError_TooLarge` -> `too-large`, as the WIT names the case.
    case = type(value).__name__.rsplit("_", 1)[-1] if value is not None else "Error"
    tag = "".join("-" + c.lower() if c.isupper() else c for c in case).lstrip("-")
    kind = {"denied": "denied", "timeout": "timeout", "invalid": "invalid-input"}.get(tag, "upstream")
    retryable = tag in ("timeout", "connection", "unavailable")
    return StepError(f"{what}: {tag}: {detail}", kind=kind, retryable=retryable)


def _bytes(body):
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    return (body if isinstance(body, str) else json.dumps(body)).encode()


class Config:
    def get(self, name):
        """The value of a config var for this instance, or None."""
        return _config.get(str(name))

    def names(self):
        """The names of the config vars this step can read."""
        return _config.names()


class Log:
    def _log(self, level, args):
        _log.log(level, " ".join(a if isinstance(a, str) else json.dumps(a) for a in args))

    def debug(self, *args):
        self._log(_log.Level.DEBUG, args)

    def info(self, *args):
        self._log(_log.Level.INFO, args)

    def warn(self, *args):
        self._log(_log.Level.WARN, args)

    def error(self, *args):
        self._log(_log.Level.ERROR, args)


class State:
    def _scope(self, scope):
        return _state.Scope.INSTANCE if scope == "instance" else _state.Scope.FLOW

    def get(self, key, scope="flow"):
        if _state is None:
            _unavailable("state")()
        raw = _state.get(self._scope(scope), str(key))
        return None if raw is None else json.loads(raw)

    def set(self, key, value, scope="flow"):
        if _state is None:
            _unavailable("state")()
        try:
            _state.set(self._scope(scope), str(key), json.dumps(value).encode())
        except Err as e:
            raise _host_error(f"state.set({key!r})", e) from None

    def delete(self, key, scope="flow"):
        if _state is None:
            _unavailable("state")()
        _state.delete(self._scope(scope), str(key))


class Response:
    def __init__(self, response):
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.headers}
        self.body = response.body

    def text(self):
        return self.body.decode()

    def json(self):
        return json.loads(self.body)


class Http:
    def send(self, url, method="GET", headers=None, body=None, timeout_ms=None, follow_redirects=True):
        if _http is None:
            _unavailable("http")()
        pairs = list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
        request = _http.Request(
            method, url, [(str(k), str(v)) for k, v in pairs], _bytes(body), timeout_ms, follow_redirects
        )
        try:
            return Response(_http.send(request))
        except Err as e:
            raise _host_error(f"{method} {url}", e) from None


class S3:
    def put_object(self, region, bucket, key, body, content_type="application/octet-stream",
                   tags=None, metadata=None, endpoint=None, path_style=False):
        if _s3 is None:
            _unavailable("s3")()
        request = _s3.PutObjectRequest(
            region, bucket, key, _bytes(body) or b"", content_type,
            [(k, str(v)) for k, v in (tags or {}).items()],
            [(k, str(v)) for k, v in (metadata or {}).items()],
            endpoint, path_style,
        )
        try:
            out = _s3.put_object(request)
        except Err as e:
            raise _host_error(f"put s3://{bucket}/{key}", e) from None
        return {"etag": out.etag, "version_id": out.version_id, "location": out.location}


class Context:
    def __init__(self):
        self.config = Config()
        self.log = Log()
        self.logger = self.log
        self.state = State()
        self.http = Http()
        self.s3 = S3()
        self.StepError = StepError

    @property
    def config_vars(self):
        return {name: self.config.get(name) for name in self.config.names()}


_context = Context()


def _input(value):
    if isinstance(value, types.Value_Json):
        return json.loads(value.value)
    return {"content_type": value.value.content_type, "data": value.value.data}


def _result(value):
    if isinstance(value, (bytes, bytearray)):
        return types.Value_Bytes(types.Blob("application/octet-stream", bytes(value)))
    return types.Value_Json(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _step_error(error):
    frames = traceback.extract_tb(error.__traceback__)
    frames = [f for f in frames if not f.filename.endswith("__WEFT_RUNTIME_FILE__")]
    lines = "".join(traceback.format_list(frames))
    message = f"{type(error).__name__}: {error}"
    if lines:
        message += "\nTraceback (most recent call last):\n" + lines.rstrip("\n")
    kind = _KINDS.get(getattr(error, "kind", "internal"), types.ErrorKind.INTERNAL)
    return types.StepError(kind, message, getattr(error, "retryable", False) is True)


class WitWorld(wit_world.WitWorld):
    def run(self, inputs):
        values = {name: _input(value) for name, value in inputs}
        try:
            return _result(step.run(_context, values))
        except Exception as e:
            raise Err(_step_error(e)) from None
