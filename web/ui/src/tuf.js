// A tuf-js client in the browser: the Updater with an in-memory metadata directory and a
// fetcher on window.fetch. Everything it returns was verified by tuf-js from the root it
// started from.
import { Buffer } from 'buffer';
import { Updater } from 'tuf-js';
import { DownloadHTTPError, DownloadLengthMismatchError } from 'tuf-js/dist/error.js';
import { Metadata } from '@tufjs/models';
import { sha256 } from '@noble/hashes/sha2.js';
import { writeFileSync } from './shim/fs.js';

export function hex(bytes) {
  return Buffer.from(bytes).toString('hex');
}

export function sha256hex(bytes) {
  return hex(sha256(Uint8Array.from(bytes)));
}

// BrowserFetcher downloads with fetch, bounded by the length TUF allows, and keeps every
// body it fetched (by URL) so pages can compare exact bytes with what tuf-js verified.
export class BrowserFetcher {
  constructor() {
    this.bodies = new Map();
  }

  async downloadBytes(url, maxLength) {
    let resp;
    try {
      resp = await fetch(url, { cache: 'no-store', credentials: 'omit', redirect: 'follow' });
    } catch (e) {
      throw new Error(`could not fetch ${url}: ${e.message}. Is the repository up, and does it allow cross-origin requests (CORS)?`);
    }
    if (!resp.ok) {
      throw new DownloadHTTPError(`fetching ${url}: HTTP ${resp.status}`, resp.status);
    }
    const reader = resp.body.getReader();
    const chunks = [];
    let n = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > maxLength) {
        reader.cancel();
        throw new DownloadLengthMismatchError(`${url} is longer than the ${maxLength} bytes TUF allows for it`);
      }
      chunks.push(value);
    }
    const b = Buffer.concat(chunks.map((c) => Buffer.from(c)));
    this.bodies.set(url, b);
    return b;
  }

  async downloadFile() {
    throw new Error('target downloads go through the browser: use the download links');
  }
}

let dirs = 0;

// open returns an Updater that trusts root (bytes) for the repository at metadataUrl.
// timestamp (bytes, optional) is the newest timestamp seen before, for rollback protection.
export function open(metadataUrl, targetsUrl, root, timestamp) {
  const dir = `/tuf/${++dirs}`;
  writeFileSync(`${dir}/root.json`, Buffer.from(root));
  if (timestamp) writeFileSync(`${dir}/timestamp.json`, Buffer.from(timestamp));
  const fetcher = new BrowserFetcher();
  const up = new Updater({
    metadataBaseUrl: metadataUrl,
    targetBaseUrl: targetsUrl,
    metadataDir: dir,
    targetDir: `${dir}/targets`,
    fetcher,
    config: { userAgent: 'cairn-web' },
  });
  return { up, fetcher };
}

// trusted returns the verified metadata of role, if tuf-js has loaded it.
export function trusted(up, role) {
  const ts = up.trustedSet;
  switch (role) {
    case 'root': return ts.root;
    case 'timestamp': return ts.timestamp;
    case 'snapshot': return ts.snapshot;
    case 'targets': return ts.targets;
  }
  return ts.getRole(role);
}

// loadedRoles lists every role tuf-js has verified in this session.
export function loadedRoles(up) {
  return Object.keys(up.trustedSet.trustedSet);
}

// delegatorOf finds a loaded role that delegates to role: its name, metadata and the
// delegation (keyIDs, threshold).
export function delegatorOf(up, role) {
  for (const name of loadedRoles(up)) {
    const md = up.trustedSet.getRole(name);
    const d = md && md.signed && md.signed.delegations;
    if (!d) continue;
    if (d.roles && d.roles[role]) return { name, md, keys: d.keys, role: d.roles[role] };
    if (d.succinctRoles && d.succinctRoles.isDelegatedRole(role)) return { name, md, keys: d.keys, role: d.succinctRoles };
  }
  return null;
}

// keysFor returns the keys and delegation that verify role: root's for top-level roles.
export function keysFor(up, role) {
  if (['root', 'timestamp', 'snapshot', 'targets'].includes(role)) {
    const root = up.trustedSet.root;
    return { name: 'root', keys: root.signed.keys, role: root.signed.roles[role] };
  }
  return delegatorOf(up, role);
}

// signatureStates checks, key by key, the signatures on md against the keys trusted for
// it: every trusted key (signed and valid, signed and INVALID, or no signature) and every
// signature by a key that is not trusted.
export function signatureStates(md, keys, delegation) {
  const out = [];
  const ids = delegation ? delegation.keyIDs : [];
  for (const id of ids) {
    const key = keys[id];
    const present = Object.prototype.hasOwnProperty.call(md.signatures, id);
    let state = present ? 'invalid' : 'missing';
    if (present && key) {
      try {
        key.verifySignature(md);
        state = 'valid';
      } catch {
        state = 'invalid';
      }
    }
    if (!key) state = present ? 'unknown-key' : 'missing';
    out.push({ keyid: id, state, keytype: key ? key.keyType : '' });
  }
  for (const id of Object.keys(md.signatures)) {
    if (!ids.includes(id)) out.push({ keyid: id, state: 'untrusted', keytype: '' });
  }
  return out;
}

// parse turns metadata bytes into a @tufjs/models Metadata of the given type.
export function parse(type, bytes) {
  return Metadata.fromJSON(type, JSON.parse(Buffer.from(bytes).toString('utf8')));
}

// describe says what a failure was, naming tuf-js's error class.
export function describe(err) {
  let name = '';
  for (let p = Object.getPrototypeOf(err); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    if (p.constructor && p.constructor.name && p.constructor.name !== 'Error') {
      name = p.constructor.name;
      break;
    }
  }
  let msg = err && err.message ? err.message : String(err);
  if (err && err.cause && err.cause.message) msg += ` (${err.cause.message})`;
  return name ? `${name}: ${msg}` : msg;
}
