// Globals a code step commonly expects that an engine may lack, evaluated before the step's own
// module. QuickJS has the ECMAScript library only: this adds UTF-8 `TextEncoder` and
// `TextDecoder`, and a `console` that the runtime points at the step's log once the step runs.

if (typeof globalThis.TextEncoder === 'undefined') {
  globalThis.TextEncoder = class TextEncoder {
    get encoding() {
      return 'utf-8';
    }

    encode(input = '') {
      const text = String(input);
      const bytes = [];
      for (let i = 0; i < text.length; i++) {
        let code = text.codePointAt(i);
        if (code > 0xffff) i++;
        else if (code >= 0xd800 && code <= 0xdfff) code = 0xfffd; // a lone surrogate
        if (code < 0x80) bytes.push(code);
        else if (code < 0x800) bytes.push(0xc0 | (code >> 6), 0x80 | (code & 63));
        else if (code < 0x10000) {
          bytes.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63));
        } else {
          bytes.push(
            0xf0 | (code >> 18),
            0x80 | ((code >> 12) & 63),
            0x80 | ((code >> 6) & 63),
            0x80 | (code & 63),
          );
        }
      }
      return new Uint8Array(bytes);
    }
  };
}

if (typeof globalThis.TextDecoder === 'undefined') {
  globalThis.TextDecoder = class TextDecoder {
    constructor(label = 'utf-8') {
      if (!['utf-8', 'utf8'].includes(String(label).toLowerCase())) {
        throw new RangeError(`TextDecoder: only utf-8 is available, not ${label}`);
      }
    }

    get encoding() {
      return 'utf-8';
    }

    decode(input = new Uint8Array()) {
      const bytes = input instanceof Uint8Array ? input : new Uint8Array(input.buffer ?? input);
      let out = '';
      for (let i = 0; i < bytes.length; ) {
        const b = bytes[i];
        const need = b < 0x80 ? 0 : b >= 0xf0 && b < 0xf8 ? 3 : b >= 0xe0 ? 2 : b >= 0xc2 ? 1 : -1;
        let code = need === 0 ? b : need === 1 ? b & 31 : need === 2 ? b & 15 : b & 7;
        let ok = need >= 0 && i + need < bytes.length + (need === 0 ? 1 : 0);
        for (let k = 1; ok && k <= need; k++) {
          const c = bytes[i + k];
          if ((c & 0xc0) !== 0x80) ok = false;
          else code = (code << 6) | (c & 63);
        }
        if (ok && need > 0 && (code < [0, 0x80, 0x800, 0x10000][need] || code > 0x10ffff)) ok = false;
        if (ok && code >= 0xd800 && code <= 0xdfff) ok = false;
        out += ok ? String.fromCodePoint(code) : '\ufffd';
        i += ok ? need + 1 : 1;
      }
      return out;
    }
  };
}

if (typeof globalThis.console === 'undefined') {
  const quiet = () => {};
  globalThis.console = { log: quiet, info: quiet, warn: quiet, error: quiet, debug: quiet, trace: quiet };
}
