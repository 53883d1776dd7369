// One verification session against a repository: from the pinned root (or the newer root
// that chained from it on an earlier visit) through tuf-js's refresh.
import { Buffer } from 'buffer';
import { open } from './tuf.js';
import { loadState, saveState } from './pin.js';

export async function refreshed(metadataUrl, targetsUrl, pinned, { fromPin = false } = {}) {
  const st = fromPin ? {} : loadState(metadataUrl);
  let start = pinned.bytes;
  if (st.root) start = st.root;
  let s = open(metadataUrl, targetsUrl, start, st.timestamp);
  try {
    await s.up.refresh();
  } catch (e) {
    if (start === pinned.bytes) throw e;
    // The saved state may be what fails (a timestamp whose key was rotated out): start
    // again from the pinned root alone. A rollback still fails from there.
    s = open(metadataUrl, targetsUrl, pinned.bytes, null);
    await s.up.refresh();
  }
  const rootV = s.up.trustedSet.root.signed.version;
  const newest = s.fetcher.bodies.get(join(metadataUrl, `${rootV}.root.json`)) || Buffer.from(start);
  saveState(metadataUrl, newest, s.fetcher.bodies.get(join(metadataUrl, 'timestamp.json')));
  return s;
}

export function join(base, file) {
  return (base.endsWith('/') ? base : base + '/') + file;
}
