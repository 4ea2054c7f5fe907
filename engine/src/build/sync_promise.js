// Synchronous promises, for steps on QuickJS (see sync_await.rs): the runtime never runs the
// engine's promise jobs, and nothing a step waits on is asynchronous, so `Promise` settles and
// calls its reactions at once, and `await X` (rewritten to `__weft_await(X)`) takes a settled
// value on the spot.

const PENDING = 0;
const FULFILLED = 1;
const REJECTED = 2;

function isThenable(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof value.then === 'function';
}

class Promise {
  #state = PENDING;
  #value = undefined;
  #reactions = [];

  constructor(executor) {
    if (typeof executor !== 'function') throw new TypeError('Promise resolver is not a function');
    let done = false;
    const resolve = (value) => {
      if (!done) {
        done = true;
        this.#resolve(value);
      }
    };
    const reject = (reason) => {
      if (!done) {
        done = true;
        this.#settle(REJECTED, reason);
      }
    };
    try {
      executor(resolve, reject);
    } catch (e) {
      reject(e);
    }
  }

  #resolve(value) {
    if (value === this) return this.#settle(REJECTED, new TypeError('a promise cannot resolve to itself'));
    if (isThenable(value)) {
      let called = false;
      try {
        value.then(
          (v) => called || ((called = true), this.#resolve(v)),
          (r) => called || ((called = true), this.#settle(REJECTED, r)),
        );
      } catch (e) {
        if (!called) this.#settle(REJECTED, e);
      }
      return;
    }
    this.#settle(FULFILLED, value);
  }

  #settle(state, value) {
    if (this.#state !== PENDING) return;
    this.#state = state;
    this.#value = value;
    const reactions = this.#reactions;
    this.#reactions = [];
    for (const react of reactions) react();
  }

  then(onFulfilled, onRejected) {
    return new Promise((resolve, reject) => {
      const react = () => {
        const handler = this.#state === FULFILLED ? onFulfilled : onRejected;
        if (typeof handler !== 'function') {
          (this.#state === FULFILLED ? resolve : reject)(this.#value);
          return;
        }
        try {
          resolve(handler(this.#value));
        } catch (e) {
          reject(e);
        }
      };
      if (this.#state === PENDING) this.#reactions.push(react);
      else react();
    });
  }

  catch(onRejected) {
    return this.then(undefined, onRejected);
  }

  finally(onFinally) {
    return this.then(
      (value) => Promise.resolve(onFinally?.()).then(() => value),
      (reason) => Promise.resolve(onFinally?.()).then(() => {
        throw reason;
      }),
    );
  }

  /** The settled value or reason, for `__weft_await`. */
  static settled(promise) {
    return { state: promise.#state, value: promise.#value };
  }

  static resolve(value) {
    return value instanceof Promise ? value : new Promise((resolve) => resolve(value));
  }

  static reject(reason) {
    return new Promise((_, reject) => reject(reason));
  }

  static withResolvers() {
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  }

  static all(items) {
    return Promise.#combine(items, (results, settle) => ({
      fulfilled: (i, value) => settle.count(() => (results[i] = value)),
      rejected: (_, reason) => settle.reject(reason),
    }));
  }

  static allSettled(items) {
    return Promise.#combine(items, (results, settle) => ({
      fulfilled: (i, value) => settle.count(() => (results[i] = { status: 'fulfilled', value })),
      rejected: (i, reason) => settle.count(() => (results[i] = { status: 'rejected', reason })),
    }));
  }

  static race(items) {
    return new Promise((resolve, reject) => {
      for (const item of items) Promise.resolve(item).then(resolve, reject);
    });
  }

  static any(items) {
    const list = [...items];
    return new Promise((resolve, reject) => {
      const errors = [];
      let left = list.length;
      if (left === 0) reject(new AggregateError([], 'All promises were rejected'));
      list.forEach((item, i) =>
        Promise.resolve(item).then(resolve, (reason) => {
          errors[i] = reason;
          if (--left === 0) reject(new AggregateError(errors, 'All promises were rejected'));
        }),
      );
    });
  }

  static #combine(items, handlers) {
    const list = [...items];
    return new Promise((resolve, reject) => {
      const results = new Array(list.length);
      let left = list.length;
      const settle = {
        count: (store) => {
          store();
          if (--left === 0) resolve(results);
        },
        reject,
      };
      const { fulfilled, rejected } = handlers(results, settle);
      if (left === 0) resolve(results);
      list.forEach((item, i) =>
        Promise.resolve(item).then(
          (value) => fulfilled(i, value),
          (reason) => rejected(i, reason),
        ),
      );
    });
  }
}

Object.defineProperty(Promise.prototype, Symbol.toStringTag, { value: 'Promise' });
globalThis.Promise = Promise;
globalThis.queueMicrotask = (callback) => callback();

globalThis.__weft_await = (value) => {
  if (!isThenable(value)) return value;
  const promise = value instanceof Promise ? value : Promise.resolve(value);
  const { state, value: settled } = Promise.settled(promise);
  if (state === FULFILLED) return settled;
  if (state === REJECTED) throw settled;
  throw new Error('awaited a promise that never settles: a code step cannot wait for timers or events');
};
