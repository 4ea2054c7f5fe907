// Weft's JavaScript code-step runtime, written next to the step's module when a JavaScript step
// is built (on QuickJS by default, or on SpiderMonkey through componentize-js).
//
// It adapts the author's module to the `weft:step` world. Two shapes are accepted:
// - Weft's own: a named export `run(context, inputs)` whose return value is the result;
// - Prismatic's: a default export (or, in CommonJS, `module.exports`) that is a function of
//   `(context, params)` whose `{ data }` is the result; `context.configVars` holds the
//   instance's config vars.
// Inputs arrive as plain JavaScript values; `context` reads config vars, logs and (when the
// step asks for them) keeps state and calls HTTP and S3 through the host; anything the step
// throws becomes a `step-error` carrying the message and the author's stack.
import './__WEFT_PRELUDE_FILE__';
import * as step from '__WEFT_STEP_MODULE__';
__WEFT_HOST_IMPORTS__

// What the module exports that runs the step, and whether its result is Prismatic's `{ data }`.
const entry = (() => {
  if (typeof step.run === 'function') return { run: step.run, unwrapData: false };
  const main = step.default;
  if (typeof main === 'function') return { run: main, unwrapData: true };
  if (main && typeof main.run === 'function') return { run: main.run, unwrapData: false };
  throw new Error(
    '__WEFT_STEP_FILE__ exports no step function: add `export function run(context, inputs) { ... }`, `export default async (context, params) => ...` or `module.exports = async ({ configVars }, params) => ...`',
  );
})();

const KINDS = new Set(['invalid-input', 'denied', 'upstream', 'timeout', 'internal']);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
// Log calls made while the module is first evaluated (at build time) have no step to go to.
let running = false;

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

const writeLog = (level) => (...args) => {
  if (running) hostLog.log(level, format(args));
};
const log = {
  debug: writeLog('debug'),
  info: writeLog('info'),
  warn: writeLog('warn'),
  error: writeLog('error'),
};
globalThis.console = { ...log, log: log.info, trace: log.debug };

const config = {
  /** The value of a config var for this instance, or `undefined`. */
  get: (name) => hostConfig.get(String(name)) ?? undefined,
  /** The names of the config vars this step can read. */
  names: () => hostConfig.names(),
};

// A host call's `err` arrives as a thrown value: the WIT variant itself on QuickJS, an error
// whose `payload` is the variant on SpiderMonkey.
function hostError(what, e) {
  const payload = e && typeof e === 'object' && 'payload' in e ? e.payload : e;
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
    // QuickJS names modules by their path in the build's directory (`/step.js`).
    .map((line) => line.replace('/__WEFT_STEP_FILE__:', '__WEFT_STEP_FILE__:'))
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

// A Prismatic action returns `{ data }`; the step's result is `data`.
function unwrap(value) {
  if (entry.unwrapData && value !== null && typeof value === 'object' && 'data' in value) {
    return value.data;
  }
  return value;
}

// How the component reports a `step-error`: `__WEFT_FAIL__`.
function fail(error) {
  __WEFT_FAIL__;
}

export function run(inputs) {
  running = true;
  const values = {};
  for (const [name, value] of inputs) values[name] = inputValue(value);
  let out;
  try {
    out = entry.run(context, values);
  } catch (e) {
    fail(stepError(e));
  }
  if (!(out instanceof Promise)) {
    try {
      return result(unwrap(out));
    } catch (e) {
      fail(stepError(e));
    }
  }
  return out.then(
    (value) => {
      try {
        return result(unwrap(value));
      } catch (e) {
        fail(stepError(e));
      }
    },
    (e) => fail(stepError(e)),
  );
}
