// The console's one script: a page showing a run that is still going (or a list with one)
// reloads its main area every second until nothing is running, keeping the open step details
// open and the focus where it was.
(() => {
  'use strict';
  const main = document.getElementById('main');
  if (!main || !main.dataset.poll) return;
  const tick = async () => {
    try {
      const res = await fetch(location.href, { credentials: 'same-origin', cache: 'no-store' });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
      const fresh = doc.getElementById('main');
      if (!fresh) return;
      const open = new Set([...main.querySelectorAll('details[open]')].map((d) => d.id));
      main.innerHTML = fresh.innerHTML;
      main.querySelectorAll('details').forEach((d) => { if (open.has(d.id)) d.open = true; });
      if (fresh.dataset.poll) setTimeout(tick, 1000);
      else delete main.dataset.poll;
    } catch (_) {
      setTimeout(tick, 2000);
    }
  };
  setTimeout(tick, 1000);
})();
