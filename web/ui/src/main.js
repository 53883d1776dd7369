// Cairn's web UI in the browser: verifies server-rendered pages with tuf-js from the root
// the user pinned, the pinning flow, and the generic TUF repository browser.
import { verifyPage } from './verify.js';
import { trustPage } from './trust.js';
import { browsePage } from './browse.js';

function start() {
  const v = document.getElementById('verify');
  if (v) verifyPage(v).catch((e) => console.error('verification', e));
  const p = document.getElementById('pin');
  if (p) trustPage(p).catch((e) => console.error('pinning', e));
  const b = document.getElementById('browser');
  if (b) browsePage(b).catch((e) => console.error('browser', e));
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
