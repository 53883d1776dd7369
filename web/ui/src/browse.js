// The generic TUF repository browser: any repository, by its metadata URL and a root
// pinned by hash or file. Every fetch goes from this browser to the repository (CORS);
// everything shown was verified by tuf-js, and what failed is shown in red, not hidden.
import { Buffer } from 'buffer';
import { el, badge, setStatus, short } from './dom.js';
import { BrowserFetcher, describe, parse, sha256hex, signatureStates } from './tuf.js';
import { loadPin, normalizeHash, pin } from './pin.js';
import { refreshed, join } from './session.js';

const AUTO_EXPAND = 64; // roles loaded without a click
const TARGETS_SHOWN = 100;

export async function browsePage(sec) {
  const status = sec.querySelector('#browse-status');
  const out = sec.querySelector('#browse-out');
  const form = document.getElementById('browse-form');
  const urlIn = document.getElementById('url');
  const hashIn = document.getElementById('roothash');
  const fileIn = document.getElementById('rootfile');
  setStatus(sec, status, 'unverified', 'Enter a repository\'s metadata URL and its root\'s SHA-256 (or the root file).');
  const go = async (url, hash, file) => {
    try {
      await run(sec, status, out, url, hash, file);
    } catch (e) {
      setStatus(sec, status, 'failed', `FAILED: ${describe(e)}`);
    }
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({ url: urlIn.value });
    if (hashIn.value) q.set('root', normalizeHash(hashIn.value));
    history.replaceState(null, '', `/browse?${q}`);
    let file = null;
    if (fileIn.files && fileIn.files[0]) file = Buffer.from(await fileIn.files[0].arrayBuffer());
    await go(urlIn.value, hashIn.value, file);
  });
  const q = new URLSearchParams(location.search);
  if (q.get('root')) hashIn.value = q.get('root');
  if (q.get('url')) await go(q.get('url'), q.get('root'), null);
}

function metadataBase(url) {
  const u = new URL(url, location.href);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('the metadata URL must be http(s)');
  if (u.pathname.endsWith('.json')) u.pathname = u.pathname.replace(/[^/]*$/, '');
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  u.search = '';
  u.hash = '';
  return u.href;
}

async function run(sec, status, out, url, hash, file) {
  out.replaceChildren();
  const metadataUrl = metadataBase(url);
  const targetsUrl = new URL('../targets/', metadataUrl).href;
  setStatus(sec, status, 'unverified', `Opening ${metadataUrl}…`);
  let pinned = loadPin(metadataUrl);
  const want = normalizeHash(hash);
  if (file) {
    pin(metadataUrl, file, 'from an uploaded file');
  } else if (want) {
    if (!pinned || pinned.sha256 !== want) {
      const f = new BrowserFetcher();
      let found = null;
      const seen = [];
      for (const name of ['1.root.json', 'root.json']) {
        try {
          const b = await f.downloadBytes(join(metadataUrl, name), 512000);
          seen.push(`${name}: ${sha256hex(b)}`);
          if (sha256hex(b) === want) {
            found = b;
            break;
          }
        } catch (e) {
          seen.push(`${name}: ${describe(e)}`);
        }
      }
      if (!found) throw new Error(`no root at ${metadataUrl} has SHA-256 ${want} (${seen.join('; ')}): nothing was pinned`);
      pin(metadataUrl, found, 'by its hash');
    }
  } else if (!pinned) {
    throw new Error('give the SHA-256 of the repository\'s root, or its root file: a repository is only as trustworthy as the root you start from');
  }
  pinned = loadPin(metadataUrl);
  setStatus(sec, status, 'unverified', `Verifying ${metadataUrl} through TUF from root version ${pinned.version}…`);
  const s = await refreshed(metadataUrl, targetsUrl, pinned, { fromPin: true });
  const up = s.up;
  const ts = up.trustedSet;
  setStatus(sec, status, 'verified', `Verified through TUF from root version ${ts.root.signed.version}, snapshot ${ts.snapshot.signed.version} (timestamp ${ts.timestamp.signed.version}), starting from the root you pinned (version ${pinned.version}, SHA-256 ${pinned.sha256}).`);
  out.append(topLevel(up), rootHistory(up, s.fetcher, metadataUrl, pinned));
  const tree = el('section', { 'aria-labelledby': 'deleg-h' }, el('h3', { id: 'deleg-h' }, 'Targets and delegations'));
  const ctx = { up, fetcher: s.fetcher, metadataUrl, pending: [] };
  tree.append(el('ul', { class: 'tree', id: 'tree' }, el('li', {}, roleNode(ctx, 'targets', 'root', ts.targets))));
  out.append(tree);
  // Open small trees at once, breadth first; the rest opens on a click.
  let opened = 0;
  while (ctx.pending.length && opened < AUTO_EXPAND) {
    const d = ctx.pending.shift();
    opened++;
    await expand(ctx, d);
  }
}

function expires(md) {
  const exp = new Date(md.signed.expires);
  const expired = exp.getTime() <= Date.now();
  return el('span', { class: expired ? 'bad' : '' }, `expires ${md.signed.expires}${expired ? ' (EXPIRED)' : ''}`);
}

function sigList(states) {
  return el('ul', { class: 'keys sigs' }, states.map((x) => el('li', { class: x.state === 'invalid' ? 'bad' : '', 'data-keyid': x.keyid, 'data-state': x.state },
    el('code', { class: 'id' }, short(x.keyid)), ' ', x.keytype, ' ',
    x.state === 'valid' ? badge('verified', 'valid signature')
      : x.state === 'invalid' ? badge('failed', 'INVALID SIGNATURE')
        : x.state === 'missing' ? badge('unverified', 'no signature')
          : badge('unverified', 'signature by a key not trusted for this role'))));
}

function summary(states, threshold) {
  const valid = states.filter((x) => x.state === 'valid').length;
  const invalid = states.filter((x) => x.state === 'invalid').length;
  const parts = [`${valid} of ${threshold} required signature(s) valid`];
  if (invalid) parts.push(`${invalid} INVALID`);
  return { text: parts.join(', '), bad: invalid > 0 || valid < threshold };
}

function topLevel(up) {
  const ts = up.trustedSet;
  const root = ts.root;
  const rows = ['root', 'timestamp', 'snapshot', 'targets'].map((name) => {
    const md = name === 'root' ? root : ts[name];
    const r = root.signed.roles[name];
    const states = signatureStates(md, root.signed.keys, r);
    const sm = summary(states, r.threshold);
    return el('tr', { 'data-role': name, class: sm.bad ? 'badrow' : '' },
      el('th', { scope: 'row' }, name), el('td', {}, String(md.signed.version)), el('td', {}, expires(md)),
      el('td', {}, `${r.threshold} of ${r.keyIDs.length}`), el('td', {}, el('p', { class: sm.bad ? 'bad' : 'ok' }, sm.text), sigList(states)));
  });
  return el('section', { 'aria-labelledby': 'top-h' }, el('h3', { id: 'top-h' }, 'Top-level roles'),
    el('table', { id: 'toplevel' }, el('caption', {}, 'Verified top-level metadata, with each signature checked in your browser'),
      el('thead', {}, el('tr', {}, ['Role', 'Version', 'Expiry', 'Threshold', 'Signatures'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, rows)));
}

function rootHistory(up, fetcher, metadataUrl, pinned) {
  const roots = new Map([[pinned.version, parse('root', pinned.bytes)]]);
  for (let v = pinned.version + 1; v <= up.trustedSet.root.signed.version; v++) {
    const b = fetcher.bodies.get(join(metadataUrl, `${v}.root.json`));
    if (b) roots.set(v, parse('root', b));
  }
  const versions = [...roots.keys()].sort((a, b) => a - b);
  const mk = (id, sel) => el('select', { id }, versions.map((v) => el('option', { value: v, selected: v === sel }, String(v))));
  const from = mk('diff-from', versions.length > 1 ? versions[versions.length - 2] : versions[0]);
  const to = mk('diff-to', versions[versions.length - 1]);
  const outEl = el('div', { id: 'diff-out', 'aria-live': 'polite' });
  const show = () => outEl.replaceChildren(rootDiff(roots.get(Number(from.value)), roots.get(Number(to.value)), from.value, to.value));
  from.addEventListener('change', show);
  to.addEventListener('change', show);
  show();
  return el('section', { 'aria-labelledby': 'roots-h' }, el('h3', { id: 'roots-h' }, 'Root versions'),
    el('p', {}, `Versions ${versions.join(', ')} verified as a chain from your pinned root (each signed by the threshold of the previous root's keys and of its own).`),
    el('p', { class: 'diffform' }, el('label', { for: 'diff-from' }, 'Compare root'), from, el('label', { for: 'diff-to' }, 'with'), to),
    outEl);
}

function rootDiff(a, b, va, vb) {
  const items = [];
  for (const id of Object.keys(b.signed.keys)) if (!a.signed.keys[id]) items.push(el('li', { class: 'add' }, 'ADDED key ', el('code', { class: 'id' }, id), ` (${b.signed.keys[id].keyType})`));
  for (const id of Object.keys(a.signed.keys)) if (!b.signed.keys[id]) items.push(el('li', { class: 'del' }, 'REMOVED key ', el('code', { class: 'id' }, id), ` (${a.signed.keys[id].keyType})`));
  for (const role of ['root', 'timestamp', 'snapshot', 'targets']) {
    const ra = a.signed.roles[role], rb = b.signed.roles[role];
    if (!ra || !rb) continue;
    if (ra.threshold !== rb.threshold) items.push(el('li', { class: 'del' }, `${role}: threshold ${ra.threshold} → ${rb.threshold}`));
    for (const id of rb.keyIDs) if (!ra.keyIDs.includes(id)) items.push(el('li', { class: 'add' }, `${role}: now trusts key ${short(id)}`));
    for (const id of ra.keyIDs) if (!rb.keyIDs.includes(id)) items.push(el('li', { class: 'del' }, `${role}: no longer trusts key ${short(id)}`));
  }
  if (!items.length) items.push(el('li', {}, 'No key or threshold changes.'));
  return el('div', {}, el('p', {}, `Root ${va} → ${vb}:`), el('ul', { class: 'diff', id: 'root-diff' }, items));
}

// roleNode renders a verified targets role: signatures, delegations (children load when
// opened), targets.
function roleNode(ctx, name, parent, md, delegation, keys) {
  const body = [];
  let sm = null;
  if (delegation) {
    const states = signatureStates(md, keys, delegation);
    sm = summary(states, delegation.threshold);
    body.push(el('p', { class: sm.bad ? 'bad' : 'ok' }, `Signatures: ${sm.text}.`), sigList(states));
  }
  body.push(el('p', {}, `Version ${md.signed.version}, `, expires(md), '.'));
  const d = md.signed.delegations;
  if (d) {
    const kids = [];
    if (d.roles) {
      for (const [child, r] of Object.entries(d.roles)) {
        const how = r.paths ? `paths ${r.paths.join(', ')}` : `hash prefixes ${(r.pathHashPrefixes || []).join(', ')}`;
        kids.push(el('li', {}, placeholder(ctx, child, name, `${how}; threshold ${r.threshold}${r.terminating ? '; terminating' : ''}`)));
      }
    }
    if (d.succinctRoles) {
      const sr = d.succinctRoles;
      const present = [...sr.getRoles()].filter((n) => ctx.up.trustedSet.snapshot.signed.meta[`${n}.json`]);
      body.push(el('p', {}, `Succinct hash bins (TAP 15): ${sr.numberOfBins} bins named ${sr.namePrefix}-…, by the first ${sr.bitLength} bits of SHA-256 of the target path; threshold ${sr.threshold}; ${present.length} bin(s) in the snapshot.`));
      for (const child of present) kids.push(el('li', {}, placeholder(ctx, child, name, 'hash bin')));
    }
    if (kids.length) body.push(el('ul', { class: 'tree' }, kids));
  }
  const paths = Object.keys(md.signed.targets).sort();
  if (paths.length) {
    const rows = paths.slice(0, TARGETS_SHOWN).map((p) => {
      const t = md.signed.targets[p];
      return el('tr', {}, el('th', { scope: 'row' }, p), el('td', {}, String(t.length)),
        el('td', {}, el('code', { class: 'sha' }, t.hashes.sha256 || Object.entries(t.hashes).map(([k, v]) => `${k}:${v}`).join(' '))),
        el('td', {}, t.custom ? el('pre', { class: 'custom' }, JSON.stringify(t.custom, null, 2)) : '—'));
    });
    body.push(el('table', { class: 'targets' }, el('caption', {}, `${paths.length} target(s) in ${name}${paths.length > TARGETS_SHOWN ? `, the first ${TARGETS_SHOWN} shown` : ''}`),
      el('thead', {}, el('tr', {}, ['Path', 'Length', 'Hash', 'Custom'].map((h) => el('th', { scope: 'col' }, h)))), el('tbody', {}, rows)));
  }
  const cls = `role ${sm && sm.bad ? 'failed' : 'verified'}`;
  return el('details', { class: cls, open: true, 'data-role': name, 'data-loaded': 'true' },
    el('summary', {}, `${name} `, sm && sm.bad ? badge('failed', `verified, but ${sm.text}`) : badge('verified', 'Verified'), ` (delegated by ${parent})`), ...body);
}

function placeholder(ctx, child, parent, how) {
  const d = el('details', { class: 'role', 'data-role': child, 'data-parent': parent },
    el('summary', {}, `${child} `, badge('unverified', 'not loaded'), ` — ${how}`), el('p', { class: 'note' }, 'Open to load and verify it.'));
  d.addEventListener('toggle', () => {
    if (d.open && !d.dataset.loaded) expand(ctx, d);
  });
  ctx.pending.push(d);
  return d;
}

async function expand(ctx, d) {
  if (d.dataset.loaded) return;
  d.dataset.loaded = 'loading';
  const child = d.dataset.role, parent = d.dataset.parent;
  const pmd = ctx.up.trustedSet.getRole(parent);
  const dl = pmd.signed.delegations;
  const delegation = dl.roles ? dl.roles[child] : dl.succinctRoles;
  try {
    const md = await ctx.up.loadTargets(child, parent);
    d.replaceWith(roleNode(ctx, child, parent, md, delegation, dl.keys));
  } catch (e) {
    // Show why, signature by signature, from the bytes that were fetched.
    const body = [el('p', { class: 'bad' }, `FAILED to verify ${child}: ${describe(e)}`)];
    const meta = ctx.up.trustedSet.snapshot.signed.meta[`${child}.json`];
    const b = meta && ctx.fetcher.bodies.get(join(ctx.metadataUrl, `${meta.version}.${child}.json`));
    if (b) {
      try {
        body.push(sigList(signatureStates(parse('targets', b), dl.keys, delegation)));
      } catch (e2) {
        body.push(el('p', { class: 'bad' }, `It does not parse: ${describe(e2)}`));
      }
    }
    d.replaceWith(el('details', { class: 'role failed', open: true, 'data-role': child, 'data-loaded': 'failed' },
      el('summary', {}, `${child} `, badge('failed', 'VERIFICATION FAILED'), ` (delegated by ${parent})`), ...body));
  }
}

export { sha256hex };
