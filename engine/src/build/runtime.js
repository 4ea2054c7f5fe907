// Weft's JavaScript code-step runtime, written next to the step's module by `weft build`.
//
// It adapts a module that exports `run(context, inputs)` to the `weft:step` world: inputs
// arrive as plain JavaScript values, `context` reads config vars, logs and (when the step's
// manifest asks for them) keeps state and calls HTTP and S3 through the host; the value `run`
// returns (or resolves to) becomes the step's result, and anything it throws becomes a
// `step-error` carrying the message and the stack.
import * as step from '__WEFT_STEP_MODULE__';
import * as hostConfig from 'weft:step/config@0.1.0';
import { log as hostLog } from 'weft:step/log@0.1.0';
__WEFT_HOST_IMPORTS__

if (typeof step.run !== 'function') {
  throw new Error(
    '__WEFT_STEP_FILE__ does not export a function `run`; add `export function run(context, inputs) { ... }`',
  );
}

const KINDS = new Set(['invalid-input', 'denied', 'upstream', 'timeout', 'internal']);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An error with a step-error kind; `retryable` tells the host a retry may succeed. */
class StepError extends Error {
  constructor(message, { kind = 'internal', retryable = false } = {}) {
    super(message);
    this.name = 'StepError';
    this.kind = kind;
    this.retryable = retryable;
  }
}

function format(args) {
  return args
    .map((a) => (typeof a === 'string' ? a : a instanceof Error ? `${a}` : JSON.stringify(a)))
    .join(' ');
}

const log = {
  debug: (...args) => hostLog('debug', format(args)),
  info: (...args) => hostLog('info', format(args)),
  warn: (...args) => hostLog('warn', format(args)),
  error: (...args) => hostLog('error', format(args)),
};

const config = {
  /** The value of a config var for this instance, or `undefined`. */
  get: (name) => hostConfig.get(String(name)) ?? undefined,
  /** The names of the config vars this step can read. */
  names: () => hostConfig.names(),
};

// A host call's `err` arrives as a thrown error whose `payload` is the WIT variant.
function hostError(what, e) {
  const payload = e && e.payload;
  if (!payload || typeof payload.tag !== 'string') return e;
  const detail = typeof payload.val === 'string' ? payload.val : JSON.stringify(payload.val);
  const kind = { denied: 'denied', timeout: 'timeout', invalid: 'invalid-input' }[payload.tag];
  const retryable = ['timeout', 'connection', 'unavailable'].includes(payload.tag);
  return new StepError(`${what}: ${payload.tag}: ${detail}`, { kind: kind ?? 'upstream', retryable });
}

function bytesOf(body) {
  if (body === undefined || body === null) return undefined;
  if (body instanceof Uint8Array) return body;
  return encoder.encode(typeof body === 'string' ? body : JSON.stringify(body));
}

function unavailable(capability) {
  return () => {
    throw new StepError(
      `this step was built without the \`${capability}\` import; request it in the step's manifest (capabilities) and run \`weft build\` again`,
      { kind: 'denied' },
    );
  };
}

const state = hostState
  ? {
      get(key, scope = 'flow') {
        const bytes = hostState.get(scope, String(key));
        return bytes === undefined || bytes === null ? undefined : JSON.parse(decoder.decode(bytes));
      },
      set(key, value, scope = 'flow') {
        try {
          hostState.set(scope, String(key), encoder.encode(JSON.stringify(value)));
        } catch (e) {
          throw hostError(`state.set(${JSON.stringify(key)})`, e);
        }
      },
      delete(key, scope = 'flow') {
        hostState.delete(scope, String(key));
      },
    }
  : { get: unavailable('state'), set: unavailable('state'), delete: unavailable('state') };

const http = hostHttp
  ? {
      send({ method = 'GET', url, headers = {}, body, timeoutMs, followRedirects = true } = {}) {
        const pairs = Array.isArray(headers) ? headers : Object.entries(headers);
        let response;
        try {
          response = hostHttp.send({
            method: String(method),
            url: String(url),
            headers: pairs.map(([k, v]) => [String(k), String(v)]),
            body: bytesOf(body),
            timeoutMs,
            followRedirects,
          });
        } catch (e) {
          throw hostError(`${method} ${url}`, e);
        }
        return {
          status: response.status,
          headers: Object.fromEntries(response.headers.map(([k, v]) => [k.toLowerCase(), v])),
          body: response.body,
          text: () => decoder.decode(response.body),
          json: () => JSON.parse(decoder.decode(response.body)),
        };
      },
    }
  : { send: unavailable('http') };

const s3 = hostS3
  ? {
      putObject({ region, bucket, key, body, contentType = 'application/octet-stream', tags = {}, metadata = {}, endpoint, pathStyle = false }) {
        try {
          return hostS3.putObject({
            region: String(region),
            bucket: String(bucket),
            key: String(key),
            body: bytesOf(body) ?? new Uint8Array(),
            contentType: String(contentType),
            tags: Object.entries(tags).map(([k, v]) => [k, String(v)]),
            metadata: Object.entries(metadata).map(([k, v]) => [k, String(v)]),
            endpoint,
            pathStyle,
          });
        } catch (e) {
          throw hostError(`put s3://${bucket}/${key}`, e);
        }
      },
    }
  : { putObject: unavailable('s3') };

const context = { config, log, logger: log, state, http, s3, StepError };
Object.defineProperty(context, 'configVars', {
  enumerable: true,
  get: () => Object.fromEntries(config.names().map((name) => [name, config.get(name)])),
});

function inputValue(value) {
  if (value.tag === 'json') return JSON.parse(value.val);
  return { contentType: value.val.contentType, data: value.val.data };
}

function result(value) {
  if (value instanceof Uint8Array) {
    return { tag: 'bytes', val: { contentType: 'application/octet-stream', data: value } };
  }
  const text = JSON.stringify(value === undefined ? null : value);
  if (text === undefined) throw new StepError('the step returned a value that is not JSON (a function or a symbol)');
  return { tag: 'json', val: text };
}

// The frames of the runtime and of the component's initializer say nothing to the author.
function stepStack(error) {
  const stack = typeof error.stack === 'string' ? error.stack : '';
  return stack
    .split('\n')
    .filter((line) => line && !line.includes('__WEFT_RUNTIME_FILE__') && !line.includes('initializer.js'))
    .join('\n');
}

function stepError(error) {
  if (!(error instanceof Error)) {
    return { kind: 'internal', message: `the step threw a non-Error value: ${format([error])}`, retryable: false };
  }
  const stack = stepStack(error);
  return {
    kind: KINDS.has(error.kind) ? error.kind : 'internal',
    message: stack ? `${error.name}: ${error.message}\n${stack}` : `${error.name}: ${error.message}`,
    retryable: error.retryable === true,
  };
}

export function run(inputs) {
  const values = {};
  for (const [name, value] of inputs) values[name] = inputValue(value);
  let out;
  try {
    out = step.run(context, values);
  } catch (e) {
    throw { payload: stepError(e) };
  }
  return Promise.resolve(out).then(
    (value) => {
      try {
        return result(value);
      } catch (e) {
        throw { payload: stepError(e) };
      }
    },
    (e) => {
      throw { payload: stepError(e) };
    },
  );
}
