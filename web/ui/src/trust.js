// The first-visit flow: show the hash of the root this server offers and how to check it,
// then pin it by a hash the user got elsewhere, or by the file itself.
import { Buffer } from 'buffer';
import { el, setStatus } from './dom.js';
import { describe, parse, sha256hex, BrowserFetcher } from './tuf.js';
import { forget, loadPin, normalizeHash, pin } from './pin.js';
import { join } from './session.js';

export async function trustPage(sec) {
  const status = sec.querySelector('#pin-status');
  const detail = sec.querySelector('#pin-detail');
  const metadataUrl = new URL(sec.dataset.metadata, location.href).href;
  const render = async () => {
    const cur = loadPin(metadataUrl);
    if (cur) {
      setStatus(sec, status, 'verified', `Root version ${cur.version} is pinned in this browser (SHA-256 ${cur.sha256}, pinned ${cur.pinnedAt} ${cur.how}). Pages of this server verify from it.`);
      const btn = el('button', { type: 'button', class: 'danger', id: 'forget' }, 'Forget the pinned root');
      btn.addEventListener('click', () => {
        forget(metadataUrl);
        render();
      });
      detail.replaceChildren(el('p', {}, btn));
      return;
    }
    setStatus(sec, status, 'unverified', 'No root is pinned in this browser: pages of this server are not verified.');
    const offered = [];
    const f = new BrowserFetcher();
    for (const file of ['1.root.json', 'root.json']) {
      try {
        const b = await f.downloadBytes(join(metadataUrl, file), 512000);
        const md = parse('root', b);
        offered.push({ file, bytes: b, version: md.signed.version, sha256: sha256hex(b) });
      } catch (e) {
        offered.push({ file, error: describe(e) });
      }
    }
    const list = el('ul', { id: 'offered' }, offered.map((o) => el('li', {}, o.error
      ? `${o.file}: ${o.error}`
      : [`${o.file} is root version ${o.version}, SHA-256 `, el('code', { class: 'sha' }, o.sha256)])));
    const input = el('input', { id: 'pin-hash', type: 'text', size: 66, autocomplete: 'off', 'aria-describedby': 'pin-help' });
    const form = el('form', { class: 'pinform', id: 'pin-form' },
      el('p', {}, el('label', { for: 'pin-hash' }, 'SHA-256 of the root, from a source you trust'), input),
      el('p', { id: 'pin-help', class: 'note' }, 'The hash must match one of the roots above exactly; the page then pins that root.'),
      el('p', {}, el('button', { type: 'submit', id: 'pin-button' }, 'Pin this root')));
    const file = el('input', { id: 'pin-file', type: 'file', accept: '.json,application/json' });
    const msg = el('p', { id: 'pin-msg', role: 'alert' });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const want = normalizeHash(input.value);
      const match = offered.find((o) => o.sha256 && o.sha256 === want);
      if (!match) {
        msg.className = 'bad';
        msg.textContent = want.length === 64
          ? 'That hash matches no root this server offers. Do not pin: ask the repository\'s admins which root is right.'
          : 'Paste the 64 hex digits of the SHA-256.';
        return;
      }
      pin(metadataUrl, match.bytes, `by its hash, from ${match.file}`);
      render();
    });
    file.addEventListener('change', async () => {
      const fl = file.files && file.files[0];
      if (!fl) return;
      try {
        const b = Buffer.from(await fl.arrayBuffer());
        pin(metadataUrl, b, `from the file ${fl.name}`);
        render();
      } catch (e) {
        msg.className = 'bad';
        msg.textContent = `That file is not TUF root metadata: ${describe(e)}`;
      }
    });
    detail.replaceChildren(
      el('p', {}, 'This server offers:'), list, form,
      el('p', {}, el('label', { for: 'pin-file' }, 'Or pin a root file you got from the admins: '), file), msg);
  };
  await render();
}
