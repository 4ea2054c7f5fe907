// Weft's embedded marketplace, for the app's own pages:
//
//   <script src="https://weft.example.com/embed.js"></script>
//   const marketplace = Weft.marketplace(document.getElementById('integrations'), { token });
//   marketplace.on('activated', (detail) => …);
//
// It puts the marketplace in an iframe inside the element (`mode: 'modal'` shows it over the
// page instead), hands the iframe the customer's token by postMessage once the iframe asks
// (never in its URL), and passes the marketplace's events on: ready, activated, configured,
// enabled, disabled, removed, connection_added, connection_failed and closed. Each also fires
// on the element as a DOM event `weft:<name>`.
(() => {
  'use strict';
  const script = document.currentScript;
  const weftOrigin = new URL(script.src, location.href).origin;

  function marketplace(element, options) {
    options = options || {};
    if (!element) throw new Error('Weft.marketplace: pass the element to mount the marketplace in');
    if (!options.token && !options.userHash) {
      throw new Error('Weft.marketplace: pass { token } (a workspace-signed JWT) or { userHash: { appKey, userId, hash } }');
    }
    const listeners = {};
    const frame = document.createElement('iframe');
    frame.src = weftOrigin + '/marketplace';
    frame.title = options.title || 'Integrations';
    Object.assign(frame.style, { border: '0', width: '100%', height: '100%', minHeight: '520px', display: 'block' });

    let holder = frame;
    if (options.mode === 'modal') {
      holder = document.createElement('div');
      holder.setAttribute('role', 'dialog');
      holder.setAttribute('aria-modal', 'true');
      holder.setAttribute('aria-label', frame.title);
      Object.assign(holder.style, {
        position: 'fixed', inset: '0', background: 'rgba(0,0,0,0.45)', display: 'flex',
        alignItems: 'center', justifyContent: 'center', zIndex: '2147483000',
      });
      const box = document.createElement('div');
      Object.assign(box.style, { width: 'min(720px, 94vw)', height: 'min(640px, 90vh)', background: '#fff', borderRadius: '8px', overflow: 'hidden' });
      box.appendChild(frame);
      holder.appendChild(box);
      holder.addEventListener('keydown', (e) => { if (e.key === 'Escape') close(); });
    }
    element.appendChild(holder);

    function fire(type, detail) {
      (listeners[type] || []).forEach((f) => f(detail));
      (listeners['*'] || []).forEach((f) => f(type, detail));
      if (typeof options.onEvent === 'function') options.onEvent(type, detail);
      element.dispatchEvent(new CustomEvent('weft:' + type, { detail }));
    }

    function onMessage(event) {
      if (event.source !== frame.contentWindow || event.origin !== weftOrigin) return;
      const message = event.data || {};
      if (message.weft === 'hello') {
        frame.contentWindow.postMessage({ weft: 'auth', token: options.token, userHash: options.userHash, modal: options.mode === 'modal' }, weftOrigin);
      } else if (message.weft === 'event') {
        if (message.type === 'close') close();
        else fire(message.type, message.detail || {});
      }
    }
    window.addEventListener('message', onMessage);

    let open = true;
    function close() {
      if (!open) return;
      open = false;
      window.removeEventListener('message', onMessage);
      holder.remove();
      fire('closed', {});
    }

    return {
      on(type, listener) { (listeners[type] = listeners[type] || []).push(listener); return this; },
      close,
      frame,
    };
  }

  window.Weft = Object.assign(window.Weft || {}, { marketplace });
})();
