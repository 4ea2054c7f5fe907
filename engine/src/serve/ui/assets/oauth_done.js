// The OAuth popup's last page: tells the marketplace frame that opened it how the connection
// went (to this origin only: the frame is served from here), then closes. It carries no token.
(() => {
  'use strict';
  const data = document.body.dataset;
  if (window.opener) {
    window.opener.postMessage({
      weft: 'oauth',
      ok: data.ok === 'true',
      instance: data.instance,
      connection: data.connection,
    }, location.origin);
    if (data.ok === 'true') window.close();
  }
})();
