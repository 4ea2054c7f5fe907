// OAuth 2.0 connections in a real browser, driven by tests/serve/oauth.rs (which starts
// `weft serve` with an integration whose steps call this script's loopback API).
//
// This script runs a real OpenID provider (the `oidc-provider` package) on IDP_PORT with a
// small API beside it (`/api/whoami`, which accepts only the provider's live access tokens),
// and a host app's page on HOST_PORT that embeds the marketplace. A customer connects a
// client-credentials account with its fields, then signs in at the provider in the OAuth popup;
// its runs call the API with the tokens the host applies. Access tokens live 4 seconds, so the
// host must refresh them; then the provider forgets every refresh token, and the connection
// must be marked failed with runs saying to reconnect; connecting again mends it. Everything
// found is reported as one WEFT-RESULT line.
import http from 'node:http';
import { failAfter, launch, axeCheckFrame, screenshot, report, fail } from './lib.mjs';

const env = (name) => {
  const value = process.env[name];
  if (!value) fail(`${name} is not set (tests/serve/oauth.rs sets it)`);
  return value;
};
const WEFT = env('WEFT_URL');
const IDP_PORT = Number(env('WEFT_IDP_PORT'));
const HOST_PORT = Number(env('WEFT_HOST_PORT'));
const TOKEN = env('WEFT_CUSTOMER_TOKEN');
const ADMIN = env('WEFT_ADMIN_TOKEN');
const CLIENT_SECRET = env('IDP_CLIENT_SECRET');
const ISSUER = `http://127.0.0.1:${IDP_PORT}`;
const ACCESS_TOKEN_SECONDS = 4;

// The provider's storage: a Map, so the test can make it forget refresh tokens (as a provider
// does when a user revokes an app's access).
const stored = new Map();
class Adapter {
  constructor(model) { this.model = model; }
  key(id) { return `${this.model}:${id}`; }
  async upsert(id, payload, expiresIn) {
    stored.set(this.key(id), { payload, expires: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
  }
  async find(id) {
    const entry = stored.get(this.key(id));
    if (!entry || entry.expires < Date.now()) return undefined;
    return entry.payload;
  }
  async findByUid(uid) {
    for (const [key, entry] of stored) {
      if (key.startsWith(`${this.model}:`) && entry.payload.uid === uid) return entry.payload;
    }
    return undefined;
  }
  async findByUserCode() { return undefined; }
  async consume(id) {
    const entry = stored.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id) { stored.delete(this.key(id)); }
  async revokeByGrantId(grantId) {
    for (const [key, entry] of stored) if (entry.payload.grantId === grantId) stored.delete(key);
  }
}
const forgetRefreshTokens = () => {
  let n = 0;
  for (const key of [...stored.keys()]) if (key.startsWith('RefreshToken:')) { stored.delete(key); n += 1; }
  return n;
};

const grants = [];
async function startProvider() {
  let Provider;
  try {
    ({ default: Provider } = await import('oidc-provider'));
  } catch (err) {
    fail(`oidc-provider is missing: run tests/tools/install (or \`npm ci\` in tests/browser); ${err.message}`);
  }
  const provider = new Provider(ISSUER, {
    adapter: Adapter,
    clients: [
      {
        client_id: 'weft-marketplace',
        client_secret: CLIENT_SECRET,
        redirect_uris: [`${WEFT}/marketplace/oauth/callback`],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        scope: 'openid offline_access',
      },
      {
        client_id: 'svc-client',
        client_secret: 'svc-secret-5b2e',
        redirect_uris: [],
        grant_types: ['client_credentials'],
        response_types: [],
        scope: 'api',
      },
    ],
    scopes: ['openid', 'offline_access', 'api'],
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
    },
    ttl: { AccessToken: ACCESS_TOKEN_SECONDS, ClientCredentials: ACCESS_TOKEN_SECONDS },
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    // Refresh tokens are not rotated, so revoking them is the only way one stops working.
    rotateRefreshToken: () => false,
  });
  provider.on('grant.success', (ctx) => grants.push(ctx.oidc.params.grant_type));
  const callback = provider.callback();
  const api = async (req, res) => {
    const token = (req.headers.authorization || '').replace(/^Bearer /, '');
    const user = token && await provider.AccessToken.find(token);
    const client = !user && token && await provider.ClientCredentials.find(token);
    const live = user || client;
    if (!live || live.isExpired) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'invalid_token' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(user ? { sub: user.accountId } : { client: client.clientId }));
  };
  const server = http.createServer((req, res) => {
    if (req.url === '/api/whoami') api(req, res).catch((e) => { res.writeHead(500); res.end(String(e)); });
    else callback(req, res);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(IDP_PORT, '127.0.0.1', resolve);
  });
  return server;
}

const HOST_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Acme app</title>
<script src="${WEFT}/embed.js"></script></head>
<body><h1>Acme app</h1><div id="slot" style="height: 720px"></div>
<script>
window.events = [];
window.mount = (options) => {
  Weft.marketplace(document.getElementById('slot'), Object.assign({ onEvent: (type, detail) => window.events.push({ type, detail }) }, options));
};
</script></body></html>`;

async function hostServer() {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(HOST_PAGE);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(HOST_PORT, '127.0.0.1', resolve);
  });
  return server;
}

async function api(method, path, token, body) {
  const res = await fetch(`${WEFT}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

// A run of `flow` on the customer's instance, as its output or error.
async function run(instance, flow) {
  const r = await api('POST', `/api/v1/instances/${instance}/flows/${flow}/runs?wait=true`, TOKEN);
  if (r.status !== 200 && r.status !== 201) return { status: `http ${r.status}`, error: r.text };
  return { status: r.json.status, error: r.json.error || null, output: r.json.result ?? null };
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
const result = { violations: [], screenshots: [] };
const waitForEvent = (page, type, count = 1) =>
  page.waitForFunction(([t, n]) => window.events.filter((e) => e.type === t).length >= n, [type, count], { timeout: 60000 });

// Signs in at the provider in the popup the Connect button opens, and consents.
async function signInAtProvider(page, ui, label) {
  const [popup] = await Promise.all([
    page.waitForEvent('popup'),
    ui.getByRole('button', { name: label }).click(),
  ]);
  popup.setDefaultTimeout(60000);
  popup.on('console', (m) => process.stderr.write(`[popup console] ${m.type()}: ${m.text()}\n`));
  await popup.waitForURL(/\/interaction\//);
  // The first time the provider asks who is signing in; after that its session remembers.
  const login = popup.locator('input[name="login"]');
  const consent = popup.getByRole('button', { name: 'Continue' });
  await login.or(consent).first().waitFor();
  if (await login.isVisible()) {
    await login.fill('alice');
    await popup.locator('input[name="password"]').fill('any password');
    await popup.getByRole('button', { name: 'Sign-in' }).click();
  }
  // Weft's last page closes the popup as soon as it loads, which can be before `click`
  // returns on a loaded machine: wait for the close from before the click.
  const closed = popup.waitForEvent('close');
  await consent.click().catch((err) => { if (!popup.isClosed()) throw err; });
  await closed;
}

async function main() {
  const servers = [await startProvider(), await hostServer()];
  const browser = await launch();
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(60000);
    page.on('console', (m) => process.stderr.write(`[page console] ${m.type()}: ${m.text()}\n`));
    await page.goto(`http://127.0.0.1:${HOST_PORT}/`);
    await page.evaluate((token) => window.mount({ token }), TOKEN);
    await waitForEvent(page, 'ready');
    const ui = page.frameLocator('iframe');
    const frame = () => page.frames().find((f) => f.url().startsWith(`${WEFT}/marketplace`));
    await ui.getByRole('button', { name: 'Activate idp-profile' }).click();
    await ui.getByRole('heading', { name: 'idp-profile: Connections' }).waitFor();
    await axeCheckFrame(frame(), 'marketplace: OAuth connections').then((v) => result.violations.push(...v));
    const instance = (await page.evaluate(() => window.events.find((e) => e.type === 'activated').detail)).instance;
    result.instance = instance;

    // Client credentials: the customer's own client; a wrong secret is refused by the provider.
    await ui.getByLabel('Client ID', { exact: true }).fill('svc-client');
    await ui.getByLabel('Client secret', { exact: true }).fill('wrong');
    await ui.getByRole('button', { name: 'Connect Service client' }).click();
    await ui.getByText(/the provider issued no token for this client/).waitFor();
    await ui.getByLabel('Client ID', { exact: true }).fill('svc-client');
    await ui.getByLabel('Client secret', { exact: true }).fill('svc-secret-5b2e');
    await ui.getByRole('button', { name: 'Connect Service client' }).click();
    await waitForEvent(page, 'connection_added');

    // Authorization code with PKCE, in a popup.
    await signInAtProvider(page, ui, 'Connect Example ID account');
    await waitForEvent(page, 'connection_added', 2);
    await ui.locator('#connection-idp .status.on').waitFor();
    result.screenshots.push(await screenshot(page, 'marketplace-oauth-connected'));
    await ui.getByRole('button', { name: 'Finish' }).click();
    await waitForEvent(page, 'enabled');
    result.events = await page.evaluate(() => window.events.map((e) => e.type));

    // The steps call the API with the tokens the host applies.
    result.first = await run(instance, 'whoami');
    result.service = await run(instance, 'service');
    await sleep((ACCESS_TOKEN_SECONDS + 1) * 1000);
    result.afterExpiry = await run(instance, 'whoami');
    result.serviceAfterExpiry = await run(instance, 'service');
    result.grants = [...grants];

    // The user revokes the app's access at the provider: the next refresh is refused.
    result.forgotten = forgetRefreshTokens();
    await sleep((ACCESS_TOKEN_SECONDS + 1) * 1000);
    result.revoked = await run(instance, 'whoami');
    result.revokedAgain = await run(instance, 'whoami');
    const listed = await api('GET', '/api/v1/marketplace', TOKEN);
    result.failedInList = listed.json && listed.json[0].instance.failed_connections;
    const wizard = await api('GET', `/api/v1/instances/${instance}/wizard`, TOKEN);
    result.statusAfterRevoke = wizard.json && wizard.json.connections;

    // The marketplace shows it; so does the console.
    await ui.getByRole('button', { name: 'Configure idp-profile' }).click();
    await ui.getByRole('button', { name: 'Next' }).click().catch(() => {});
    await ui.getByRole('heading', { name: 'idp-profile: Connections' }).waitFor();
    result.marketplaceSays = (await ui.locator('#connection-idp .status').textContent()).trim();
    result.screenshots.push(await screenshot(page, 'marketplace-oauth-failed'));
    const op = await browser.newPage();
    op.setDefaultTimeout(60000);
    await op.goto(`${WEFT}/console`);
    await op.getByLabel('Admin token').fill(ADMIN);
    await op.getByRole('button', { name: 'Sign in' }).click();
    await op.getByRole('heading', { name: 'Instances' }).waitFor();
    result.overviewSays = (await op.locator('tbody tr', { hasText: instance }).textContent()).replace(/\s+/g, ' ').trim();
    await op.goto(`${WEFT}/console/instances/${instance}`);
    await op.getByRole('heading', { name: 'Connections' }).waitFor();
    const row = op.locator('table', { has: op.getByRole('columnheader', { name: 'Connection' }) }).locator('tbody tr', { hasText: 'idp' });
    result.consoleSays = (await row.locator('td').nth(2).textContent()).trim();

    // Connecting again mends it.
    await signInAtProvider(page, ui, 'Connect again Example ID account');
    await waitForEvent(page, 'connection_added', 3);
    result.reconnected = await run(instance, 'whoami');
  } finally {
    await browser.close();
    servers.forEach((s) => s.close());
  }
  report(result);
}

failAfter(420);
main().catch(fail);
