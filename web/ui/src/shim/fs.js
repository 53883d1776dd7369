// An in-memory file system for tuf-js's Updater, which keeps trusted metadata in files:
// each page load works in its own directory; the page persists what it must (the newest
// root, the timestamp) in localStorage itself.
import { Buffer } from 'buffer';

const files = new Map();

function enoent(p) {
  const e = new Error(`ENOENT: no such file '${p}'`);
  e.code = 'ENOENT';
  return e;
}

export function readFileSync(p, enc) {
  if (!files.has(p)) throw enoent(p);
  const b = files.get(p);
  return enc ? b.toString(enc) : b;
}
export function writeFileSync(p, data) {
  files.set(p, Buffer.isBuffer(data) ? Buffer.from(data) : Buffer.from(String(data), 'utf8'));
}
export function existsSync(p) { return files.has(p); }
export function copyFileSync(a, b) { writeFileSync(b, readFileSync(a)); }
export function renameSync(a, b) { copyFileSync(a, b); files.delete(a); }
export function unlinkSync(p) { files.delete(p); }
export function mkdirSync() {}
export function createReadStream() { throw new Error('streams are not available in the browser'); }
export function createWriteStream() { throw new Error('streams are not available in the browser'); }
export const promises = {};
export async function mkdtemp() { throw new Error('temporary files are not available in the browser'); }
export async function rm() {}
export default { readFileSync, writeFileSync, existsSync, copyFileSync, renameSync, unlinkSync, mkdirSync, createReadStream, createWriteStream, promises, mkdtemp, rm };
