export function tmpdir() { return '/tmp'; }
export default { tmpdir };
