// Builds ../static/app.js from src/ with esbuild: tuf-js and @tufjs/models bundled for the
// browser, with Node's fs, path, crypto, util and url replaced by the small shims in
// src/shim (an in-memory file system, and signature checks on @noble/curves).
//
//   node build.mjs          write ../static/app.js
//   node build.mjs --check  exit 1 if ../static/app.js is not what the sources build
//
// The output is deterministic: the same sources and lock file give the same bytes, so the
// committed file can be checked (web/assets_test.go runs --check in make test).
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, '..', 'static', 'app.js');
const shim = (name) => path.join(here, 'src', 'shim', name);

const banner = `/* Cairn web UI (web/ui, built by \`make web-assets\`; do not edit).
 * Bundles: tuf-js, @tufjs/models, @tufjs/canonical-json (MIT); minimatch (BlueOak-1.0.0);
 * @noble/curves, @noble/hashes (MIT); buffer, base64-js (MIT); ieee754 (BSD-3-Clause). */`;

const result = await esbuild.build({
  entryPoints: [path.join(here, 'src', 'main.js')],
  bundle: true,
  write: false,
  format: 'iife',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  legalComments: 'none',
  banner: { js: banner },
  charset: 'utf8',
  logLevel: 'warning',
  alias: {
    fs: shim('fs.js'),
    'fs/promises': shim('fs.js'),
    path: shim('path.js'),
    crypto: shim('crypto.js'),
    util: shim('util.js'),
    url: shim('url.js'),
    os: shim('os.js'),
    debug: shim('debug.js'),
    '@gar/promise-retry': shim('retry.js'),
  },
  inject: [shim('globals.js')],
  define: { 'process.env.NODE_ENV': '"production"' },
});
const built = result.outputFiles[0].contents;

if (process.argv.includes('--check')) {
  const have = fs.existsSync(out) ? fs.readFileSync(out) : Buffer.alloc(0);
  if (!Buffer.from(built).equals(have)) {
    console.error(`web/static/app.js does not match its sources in web/ui: run \`make web-assets\` and commit it`);
    process.exit(1);
  }
  console.log('web/static/app.js matches its sources');
} else {
  fs.writeFileSync(out, built);
  console.log(`wrote ${path.relative(process.cwd(), out)} (${built.length} bytes)`);
}
