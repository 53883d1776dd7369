// In-browser verification of Cairn's own pages: what the server rendered is compared with
// what tuf-js verified from the root pinned in this browser. Cells that verification
// confirms say "Verified"; a difference is flagged in red; the rest stays "not verified".
import { Buffer } from 'buffer';
import { el, setCell, setStatus, short } from './dom.js';
import { describe, keysFor, sha256hex, signatureStates, trusted, parse, delegatorOf } from './tuf.js';
import { loadPin } from './pin.js';
import { refreshed, join } from './session.js';

export async function verifyPage(sec) {
  const status = sec.querySelector('#verify-status');
  const detail = sec.querySelector('#verify-detail');
  const metadataUrl = new URL(sec.dataset.metadata, location.href).href;
  const targetsUrl = new URL(sec.dataset.targets, location.href).href;
  const pinned = loadPin(metadataUrl);
  if (!pinned) {
    setStatus(sec, status, 'unverified', 'Not verified: no root is pinned in this browser for this repository, so nothing on this page was checked. Everything here is the server\'s word.');
    detail.replaceChildren(el('p', {}, el('a', { href: '/trust', id: 'pin-link' }, 'Pin this repository\'s root'), ' to verify pages in your browser (it takes a hash you check once).'));
    return;
  }
  setStatus(sec, status, 'unverified', 'Verifying through TUF from your pinned root…');
  const kind = sec.dataset.kind;
  let s;
  try {
    s = await refreshed(metadataUrl, targetsUrl, pinned, { fromPin: kind === 'role' && sec.dataset.role === 'root' });
  } catch (e) {
    fail(sec, status, detail, `Verification FAILED: the repository's metadata did not verify from your pinned root (version ${pinned.version}). ${describe(e)}`);
    return;
  }
  const up = s.up;
  const through = `through TUF from root version ${up.trustedSet.root.signed.version}, snapshot ${up.trustedSet.snapshot.signed.version}`;
  try {
    let problems = [];
    switch (kind) {
      case 'release':
        problems = await verifyRelease(sec, up);
        break;
      case 'project':
        problems = await verifyProject(sec, up);
        break;
      case 'role':
        problems = await verifyRole(sec, up, s.fetcher, metadataUrl);
        break;
      default:
        break;
    }
    verifyChain(up, problems);
    if (problems.length) {
      fail(sec, status, detail, `Verification FAILED: this page does not match the metadata verified ${through}.`, problems);
      return;
    }
    const what = { release: 'every file\'s length and SHA-256 match the signed metadata', project: 'the releases, yank flags and maintainer keys match the signed metadata', role: 'these exact bytes are the version TUF verified' }[kind];
    setStatus(sec, status, 'verified', `Verified ${through}${what ? `: ${what}` : ''}.`);
    const notes = { project: 'Not covered (the server\'s word): upload times, staged releases, pending proposals and maintainer history.', release: 'Not covered (the server\'s word): the upload time, the OCI reference and the server\'s own signature counts.' }[kind];
    detail.replaceChildren(...(notes ? [el('p', { class: 'note' }, notes)] : []));
  } catch (e) {
    fail(sec, status, detail, `Verification FAILED: ${describe(e)}`);
  }
}

function fail(sec, status, detail, text, problems = []) {
  setStatus(sec, status, 'failed', text);
  detail.replaceChildren(...(problems.length ? [el('ul', { class: 'bad', id: 'verify-problems' }, problems.map((p) => el('li', {}, p)))] : []));
}

async function verifyRelease(sec, up) {
  const problems = [];
  const rows = document.querySelectorAll('#files tr[data-path]');
  const yankedOnPage = !!document.getElementById('yank');
  let yankedSigned = false;
  for (const row of rows) {
    const path = row.dataset.path;
    const ti = await up.getTargetInfo(path);
    if (!ti) {
      setCell(row, 'failed', 'NOT IN THE SIGNED METADATA');
      problems.push(`${path} is not in the verified metadata: the server lists a file its maintainers did not sign.`);
      continue;
    }
    const sum = ti.hashes.sha256 || '';
    if (sum !== row.dataset.sha256 || String(ti.length) !== row.dataset.length) {
      setCell(row, 'failed', `MISMATCH: signed sha256 ${sum}, length ${ti.length}`);
      problems.push(`${path}: the page says sha256 ${row.dataset.sha256} (${row.dataset.length} bytes); the signed metadata says ${sum} (${ti.length} bytes).`);
      continue;
    }
    if (ti.custom && ti.custom.yanked === true) yankedSigned = true;
    setCell(row, 'verified', 'Verified');
  }
  if (rows.length && yankedSigned !== yankedOnPage) {
    problems.push(yankedSigned ? 'The signed metadata flags this release as yanked; the page does not say so.' : 'The page says this release is yanked; the signed metadata does not.');
  }
  return problems;
}

async function verifyProject(sec, up) {
  const problems = [];
  const project = sec.dataset.project;
  await up.getTargetInfo(`${project}/0/x`); // walks the delegations to the project's role
  const md = trusted(up, project);
  if (!md) {
    // A project whose first version is not published yet is in no metadata.
    const published = document.querySelectorAll('#releases tr[data-release] a').length;
    if (published) problems.push(`Project ${project} is not in the verified metadata, but the page lists published releases.`);
    return problems;
  }
  const byVersion = new Map();
  for (const [path, t] of Object.entries(md.signed.targets)) {
    const parts = path.split('/');
    if (parts.length !== 3 || parts[0] !== project) continue;
    const r = byVersion.get(parts[1]) || { files: 0, yanked: false };
    r.files++;
    if (t.custom && t.custom.yanked === true) r.yanked = true;
    byVersion.set(parts[1], r);
  }
  const onPage = new Set();
  for (const row of document.querySelectorAll('#releases tr[data-release]')) {
    const v = row.dataset.release;
    onPage.add(v);
    const r = byVersion.get(v);
    if (!row.querySelector('a')) {
      setCell(row, 'unverified', r ? 'in the signed metadata' : 'not published: nothing to verify');
      continue;
    }
    if (!r) {
      setCell(row, 'failed', 'NOT IN THE SIGNED METADATA');
      problems.push(`Release ${v} is not in the verified role of ${project}.`);
    } else if (r.yanked !== (row.dataset.yanked === 'true') || String(r.files) !== row.dataset.files) {
      setCell(row, 'failed', `MISMATCH: signed ${r.files} file(s)${r.yanked ? ', yanked' : ''}`);
      problems.push(`Release ${v}: the page does not match the signed metadata (${r.files} file(s)${r.yanked ? ', yanked' : ', not yanked'}).`);
    } else {
      setCell(row, 'verified', 'Verified');
    }
  }
  for (const v of byVersion.keys()) {
    if (!onPage.has(v)) problems.push(`The signed metadata lists release ${v}, which the page does not show.`);
  }
  const d = delegatorOf(up, project);
  if (d) {
    const ids = new Set(d.role.keyIDs);
    for (const row of document.querySelectorAll('#maintainers tr[data-keyid]')) {
      if (ids.has(row.dataset.keyid)) {
        setCell(row, 'verified', `Verified (${d.name} delegates to it)`);
        ids.delete(row.dataset.keyid);
      } else {
        setCell(row, 'failed', `NOT DELEGATED by ${d.name}`);
        problems.push(`Key ${short(row.dataset.keyid)} is not one of the keys ${d.name} delegates ${project} to.`);
      }
    }
    for (const id of ids) problems.push(`${d.name} also delegates ${project} to key ${short(id)}, which the page does not show.`);
    const th = document.getElementById('threshold');
    if (th && th.dataset.threshold !== String(d.role.threshold)) {
      problems.push(`The page says the threshold is ${th.dataset.threshold}; ${d.name} says ${d.role.threshold}.`);
    }
  }
  return problems;
}

async function verifyRole(sec, up, fetcher, metadataUrl) {
  const problems = [];
  const role = sec.dataset.role;
  const version = Number(sec.dataset.roleVersion);
  const file = `${version}.${role}.json`;
  let bytes = fetcher.bodies.get(join(metadataUrl, file));
  if (role === 'timestamp' && !bytes && up.trustedSet.timestamp.signed.version === version) {
    bytes = fetcher.bodies.get(join(metadataUrl, 'timestamp.json'));
  }
  if (role === 'root' && !bytes) {
    const pinned = loadPin(metadataUrl);
    if (pinned && pinned.version === version) bytes = pinned.bytes;
  }
  if (!bytes && !['root', 'timestamp', 'snapshot', 'targets'].includes(role)) {
    // Load the delegated role through the delegations, as a client would.
    await loadDelegated(up, role);
    bytes = fetcher.bodies.get(join(metadataUrl, file));
  }
  const md = trusted(up, role);
  if (!bytes) {
    const cur = md ? md.signed.version : undefined;
    if (role === 'root' && version > up.trustedSet.root.signed.version) {
      problems.push(`Root version ${version} is newer than the newest root that chains from your pinned root.`);
    } else {
      throw new Error(cur !== undefined && cur !== version
        ? `the browser verifies the current version of ${role} (version ${cur}); this page shows version ${version}, which it did not check`
        : `the browser could not reach ${role} version ${version} through the delegations`);
    }
    return problems;
  }
  if (sha256hex(bytes) !== sec.dataset.sha256) {
    problems.push(`The bytes TUF verified for ${file} have SHA-256 ${sha256hex(bytes)}; the page describes bytes with ${sec.dataset.sha256}.`);
    return problems;
  }
  // Each signature, checked in the browser against the keys trusted for the role.
  const type = role === 'root' || role === 'timestamp' || role === 'snapshot' ? role : 'targets';
  const parsed = parse(type, bytes);
  let k = keysFor(up, role);
  if (role === 'root') k = { name: 'root', keys: parsed.signed.keys, role: parsed.signed.roles.root };
  if (k && k.role) {
    const states = new Map(signatureStates(parsed, k.keys, k.role).map((x) => [x.keyid, x.state]));
    for (const row of document.querySelectorAll('#signatures tr[data-keyid]')) {
      const st = states.get(row.dataset.keyid);
      if (st === 'valid') setCell(row, 'verified', 'valid');
      else if (st === 'invalid') setCell(row, 'failed', 'INVALID');
      else setCell(row, 'unverified', st === 'missing' ? 'no signature' : 'not a trusted key');
    }
  }
  return problems;
}

// loadDelegated loads role breadth first from targets through tuf-js (each step verified
// against its delegator), bounded.
async function loadDelegated(up, role) {
  const queue = [['targets', 'root']];
  const seen = new Set();
  let loads = 0;
  while (queue.length && loads < 256) {
    const [name, parent] = queue.shift();
    if (seen.has(name)) continue;
    seen.add(name);
    const md = await up.loadTargets(name, parent);
    loads++;
    if (name === role) return md;
    const d = md && md.signed.delegations;
    if (!d || !d.roles) continue;
    if (d.roles[role]) {
      queue.unshift([role, name]);
      continue;
    }
    for (const child of Object.keys(d.roles)) {
      // Project roles delegate nothing: only descend into roles that delegate by pattern.
      if (!d.roles[child].paths || d.roles[child].paths.some((p) => /^[^*]+\/\*\/\*$/.test(p))) continue;
      queue.push([child, name]);
    }
  }
  return null;
}

// verifyChain marks the server's chain of signed metadata (release pages) and the
// published versions (home) against the versions tuf-js verified.
function verifyChain(up, problems) {
  for (const li of document.querySelectorAll('#chain li[data-role], .vrole[data-role]')) {
    const md = trusted(up, li.dataset.role);
    if (!md) {
      setCell(li, 'unverified', 'not loaded');
    } else if (String(md.signed.version) === li.dataset.version) {
      setCell(li, 'verified', 'Verified');
    } else {
      setCell(li, 'failed', `MISMATCH: TUF verified version ${md.signed.version}`);
      problems.push(`The page shows ${li.dataset.role} version ${li.dataset.version}; TUF verified version ${md.signed.version}.`);
    }
  }
}

export { Buffer };
