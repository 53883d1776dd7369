// The parts of Node's path that tuf-js uses, for '/'-separated paths.
export function join(...parts) {
  return parts.filter((p) => p !== '').join('/').replace(/\/+/g, '/');
}
export function parse(p) {
  const i = p.lastIndexOf('/');
  const dir = i >= 0 ? p.slice(0, i) : '';
  const base = p.slice(i + 1);
  const j = base.lastIndexOf('.');
  return { root: p.startsWith('/') ? '/' : '', dir, base, ext: j > 0 ? base.slice(j) : '', name: j > 0 ? base.slice(0, j) : base };
}
export const sep = '/';
export default { join, parse, sep };
