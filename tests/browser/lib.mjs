// Helpers for the browser tests: Debian's Chromium driven by playwright-core, axe-core
// accessibility checks, screenshots, and the result lines the Rust test reads from stdout.
// Nothing here skips: whatever is missing is an error that says how to install it.
import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

// playwright-core is imported when first needed, so a missing install fails with how to fix it
// rather than a bare ERR_MODULE_NOT_FOUND.
async function playwright() {
  try {
    return await import('playwright-core');
  } catch (err) {
    throw new Error(
      `playwright-core is missing: run tests/tools/install (or \`npm ci\` in tests/browser); ${err.message}`,
    );
  }
}

// Starts headless Chromium. WEFT_CHROMIUM names another binary; the default is Debian's.
// Playwright passes these four flags itself too; they are spelled out because the tests rely on
// them. --no-sandbox: as root in a container Chromium's sandbox fails to start.
// --disable-dev-shm-usage: a container's /dev/shm may be small; Chromium uses /tmp instead.
export async function launch() {
  const executablePath = process.env.WEFT_CHROMIUM || '/usr/bin/chromium';
  try {
    accessSync(executablePath, constants.X_OK);
  } catch {
    throw new Error(
      `Chromium not found at ${executablePath}: run tests/tools/install ` +
        '(or `apt-get install -y chromium`), or set WEFT_CHROMIUM to a Chromium binary',
    );
  }
  const { chromium } = await playwright();
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-dev-shm-usage',
    ],
  });
}

let axeSource;
function axeSourceText() {
  if (axeSource === undefined) {
    const path = join(HERE, 'node_modules', 'axe-core', 'axe.min.js');
    try {
      axeSource = readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(
        `axe-core is missing: run tests/tools/install (or \`npm ci\` in tests/browser); ${err.message}`,
      );
    }
  }
  return axeSource;
}

// Runs axe-core in a Page or a Frame (an iframe, cross-origin ones included) and returns the
// serious and critical violations as [{ label, id, impact, help, nodes: [selector] }].
// axe goes in through page/frame.evaluate(source): Playwright evaluates that over the DevTools
// protocol, which a page's Content-Security-Policy does not govern, whereas
// addScriptTag({ content }) adds an inline <script> that `script-src 'self'` blocks.
// `iframes: false`: each document is checked on its own (axeCheckFrame for frames), so axe
// never waits on frames that have no axe loaded.
async function axeIn(target, label) {
  const loaded = await target.evaluate(() => typeof window.axe === 'object');
  if (!loaded) await target.evaluate(axeSourceText());
  const violations = await target.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'], iframes: false });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      // A target is a list of selectors (one per shadow root); `>>>` joins them.
      nodes: v.nodes.map((n) => n.target.flat().join(' >>> ')),
    }));
  });
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ label, ...v }));
}

export function axeCheck(page, label) {
  return axeIn(page, label);
}

export function axeCheckFrame(frame, label) {
  return axeIn(frame, label);
}

// Saves a PNG of a Page or Locator under WEFT_SCREENSHOTS (default: weft-screenshots in the
// temporary directory) and returns its path.
export async function screenshot(pageOrLocator, name) {
  const dir = process.env.WEFT_SCREENSHOTS || join(tmpdir(), 'weft-screenshots');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${String(name).replace(/[^A-Za-z0-9._-]+/g, '-')}.png`);
  await pageOrLocator.screenshot({ path });
  return path;
}

// One line for the Rust test: `WEFT-RESULT {json}`.
export function report(obj) {
  process.stdout.write(`WEFT-RESULT ${JSON.stringify(obj)}\n`);
}

// One line for the Rust test, `WEFT-FAIL message` (newlines folded so it stays one line), then
// exit 1. An Error's stack goes to stderr. Playwright kills the browsers it launched on exit.
export function fail(msg) {
  if (msg instanceof Error) {
    process.stderr.write(`${msg.stack}\n`);
    msg = msg.message;
  }
  process.stdout.write(`WEFT-FAIL ${String(msg).replace(/\s*\n\s*/g, ' | ')}\n`);
  process.exit(1);
}

// Fails the script if it is still running after `seconds`: a browser call that never returns
// (Playwright's input calls have no timeout of their own) must fail the test, not hang CI.
export function failAfter(seconds) {
  setTimeout(() => fail(`still running after ${seconds} s`), seconds * 1000).unref();
}
