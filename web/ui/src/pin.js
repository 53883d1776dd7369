// The root the user pinned, per repository (metadata URL), in localStorage; and the state
// carried between visits: the newest root that chained from it and the newest timestamp,
// so that a server cannot roll this browser back.
import { Buffer } from 'buffer';
import { parse, sha256hex } from './tuf.js';

const PIN = 'cairn.pin:';
const STATE = 'cairn.state:';

export function loadPin(metadataUrl) {
  try {
    const v = JSON.parse(localStorage.getItem(PIN + metadataUrl) || 'null');
    if (!v || typeof v.root !== 'string') return null;
    return { ...v, bytes: Buffer.from(v.root, 'base64') };
  } catch {
    return null;
  }
}

// pin stores root bytes as the trust anchor of metadataUrl after checking they parse as
// TUF root metadata. It returns what was pinned.
export function pin(metadataUrl, bytes, how) {
  const md = parse('root', bytes);
  const v = { root: Buffer.from(bytes).toString('base64'), sha256: sha256hex(bytes), version: md.signed.version, how, pinnedAt: new Date().toISOString() };
  localStorage.setItem(PIN + metadataUrl, JSON.stringify(v));
  localStorage.removeItem(STATE + metadataUrl);
  return v;
}

export function forget(metadataUrl) {
  localStorage.removeItem(PIN + metadataUrl);
  localStorage.removeItem(STATE + metadataUrl);
}

export function loadState(metadataUrl) {
  try {
    const v = JSON.parse(localStorage.getItem(STATE + metadataUrl) || 'null');
    if (!v) return {};
    return { root: v.root ? Buffer.from(v.root, 'base64') : null, timestamp: v.timestamp ? Buffer.from(v.timestamp, 'base64') : null };
  } catch {
    return {};
  }
}

export function saveState(metadataUrl, root, timestamp) {
  try {
    localStorage.setItem(STATE + metadataUrl, JSON.stringify({
      root: root ? Buffer.from(root).toString('base64') : null,
      timestamp: timestamp ? Buffer.from(timestamp).toString('base64') : null,
    }));
  } catch {
    // Storage full or disabled: the next visit starts from the pinned root again.
  }
}

// normalizeHash accepts "sha256:HEX", upper case and spaces.
export function normalizeHash(s) {
  return String(s || '').trim().toLowerCase().replace(/^sha256:/, '').replace(/[\s:]/g, '');
}
