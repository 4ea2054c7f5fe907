// The marketplace page inside the app's iframe. It waits for the app (one of the origins in
// `[embed]`) to hand it the customer's token by postMessage, then swaps in fragments the
// server renders, sending the token as a header. Events the fragments name are passed on to
// the app. No token is ever put in a URL, a cookie or storage.
(() => {
  'use strict';
  const main = document.getElementById('weft-main');
  const allowed = (document.body.dataset.origins || '').split(' ').filter(Boolean);
  let auth = null;
  let appOrigin = null;
  // Shown as a modal dialog by the app: Escape closes it, wherever the focus is in the frame.
  let modal = false;

  const emit = (type, detail) => {
    if (appOrigin) parent.postMessage({ weft: 'event', type, detail: detail || {} }, appOrigin);
  };

  const headers = () => {
    if (auth.token) return { Authorization: 'Bearer ' + auth.token };
    const u = auth.userHash || {};
    return { 'X-Weft-App-Key': u.appKey || '', 'X-Weft-User-Id': u.userId || '', 'X-Weft-User-Hash': u.hash || '' };
  };

  const showError = (target, text) => {
    const p = document.createElement('p');
    p.className = 'alert';
    p.setAttribute('role', 'alert');
    p.textContent = text;
    target.replaceChildren(p);
  };

  // Fetches a fragment into `target` (the main area by default, or the element a form names).
  async function load(url, init, target) {
    target = target || main;
    target.setAttribute('aria-busy', 'true');
    try {
      const res = await fetch(url, Object.assign({ credentials: 'omit', cache: 'no-store' }, init, {
        headers: Object.assign(headers(), (init && init.headers) || {}),
      }));
      const type = res.headers.get('content-type') || '';
      if (!type.startsWith('text/html')) {
        let message = document.body.dataset.error;
        try { message = (await res.json()).error.message || message; } catch (_) { /* keep the generic text */ }
        showError(target, message);
        return;
      }
      target.innerHTML = await res.text();
      settle(target);
    } catch (_) {
      showError(target, document.body.dataset.error);
    } finally {
      target.removeAttribute('aria-busy');
    }
  }

  // After a fragment arrived: pass on its events, start polls, and move the focus where a
  // keyboard user expects it (the first refused field, else the new heading).
  function settle(target) {
    target.querySelectorAll('[data-weft-events]').forEach((el) => {
      let list = [];
      try { list = JSON.parse(el.dataset.weftEvents || '[]'); } catch (_) { list = []; }
      list.forEach((e) => emit(e.type, e.detail));
    });
    target.querySelectorAll('[data-weft-poll]').forEach((el) => {
      setTimeout(() => {
        if (!el.isConnected) return;
        const slot = el.parentElement;
        load(el.dataset.weftPoll, { method: 'GET' }, slot);
      }, 1000);
    });
    if (target !== main) return;
    const focus = target.querySelector('[aria-invalid="true"]') || target.querySelector('h2[tabindex]') || main;
    focus.focus();
  }

  main.addEventListener('submit', (event) => {
    const form = event.target.closest('form[data-weft-post]');
    if (!form || !auth) return;
    event.preventDefault();
    const target = form.dataset.weftTarget ? document.getElementById(form.dataset.weftTarget) : main;
    load(form.dataset.weftPost, {
      method: 'POST',
      body: new URLSearchParams(new FormData(form)),
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    }, target);
  });

  // OAuth: the popup is opened at once (inside the click, so no popup blocker stops it) and
  // sent to the provider when the server has made the authorization URL. The popup's last
  // page reports back by postMessage from this same origin.
  let popup = null;
  async function authorize(button) {
    popup = window.open('about:blank', 'weft-oauth', 'popup,width=520,height=680');
    const detail = { instance: button.dataset.weftInstance, connection: button.dataset.weftConnection };
    try {
      const res = await fetch(button.dataset.weftOauth, { method: 'POST', credentials: 'omit', cache: 'no-store', headers: headers() });
      const body = await res.json();
      if (!res.ok) throw new Error((body.error && body.error.message) || document.body.dataset.error);
      if (!popup || popup.closed) throw new Error(document.body.dataset.error);
      popup.location.href = body.authorize_url;
    } catch (error) {
      if (popup) popup.close();
      emit('connection_failed', detail);
      const slot = button.closest('section') || main;
      const p = document.createElement('p');
      p.className = 'alert';
      p.setAttribute('role', 'alert');
      p.textContent = error.message || document.body.dataset.error;
      slot.append(p);
    }
  }

  window.addEventListener('message', (event) => {
    const message = event.data || {};
    if (event.origin !== location.origin || !popup || event.source !== popup || message.weft !== 'oauth') return;
    const detail = { instance: message.instance, connection: message.connection };
    emit(message.ok ? 'connection_added' : 'connection_failed', detail);
    if (message.instance) load('/marketplace/ui/instances/' + encodeURIComponent(message.instance) + '/connections');
  });

  main.addEventListener('click', (event) => {
    const oauth = event.target.closest('[data-weft-oauth]');
    if (oauth && auth) {
      event.preventDefault();
      authorize(oauth);
      return;
    }
    const button = event.target.closest('[data-weft-get]');
    if (!button || !auth) return;
    event.preventDefault();
    load(button.dataset.weftGet, { method: 'GET' });
  });

  window.addEventListener('message', (event) => {
    const message = event.data || {};
    if (event.source !== parent || !allowed.includes(event.origin) || message.weft !== 'auth') return;
    if (!message.token && !message.userHash) return;
    auth = { token: message.token, userHash: message.userHash };
    appOrigin = event.origin;
    modal = message.modal === true;
    load('/marketplace/ui/list').then(() => emit('ready'));
  });

  document.getElementById('weft-close').addEventListener('click', () => emit('close'));
  document.addEventListener('keydown', (event) => {
    if (modal && event.key === 'Escape') emit('close');
  });

  // Tells the app the page is listening; carries nothing.
  if (parent !== window) parent.postMessage({ weft: 'hello' }, '*');
})();
