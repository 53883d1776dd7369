#!/usr/bin/env node
// get.mjs: an independent TUF client (tuf-js) for Cairn's end-to-end tests.
//
//   node get.mjs --metadata-url URL --targets-url URL --root FILE --cache DIR --out DIR TARGETPATH...
//
// It seeds <cache>/root.json from --root if the cache has none, refreshes the top-level
// metadata, then for each target path looks it up through the delegation tree, downloads
// it into a temporary file, and only once tuf-js has verified length and hashes moves it
// to <out>/<basename>. Each verified target prints one JSON line on stdout:
//   {"path": ..., "length": ..., "sha256": ..., "file": ...}
// The first failure prints {"error": <class>, "message": ...} and exits with:
//   1 hash/length mismatch, 2 signature/threshold, 4 rollback/expired/bad version,
//   5 target not found, 10 bad usage, 20 anything else.
// Targets printed before a failure were verified and written; the rest were not tried.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import tuf from 'tuf-js';

const { Updater } = tuf;

const EXIT = Object.freeze({
  hashMismatch: 1,
  signature: 2,
  policy: 4,
  notFound: 5,
  usage: 10,
  other: 20,
});

// Error classes (by constructor name, searched up the prototype chain so subclasses
// such as EqualVersionError match) and their exit codes.
const CLASS_EXIT = new Map([
  ['LengthOrHashMismatchError', EXIT.hashMismatch],
  ['DownloadLengthMismatchError', EXIT.hashMismatch],
  ['UnsignedMetadataError', EXIT.signature],
  ['BadVersionError', EXIT.policy], // includes EqualVersionError
  ['ExpiredMetadataError', EXIT.policy],
  ['TargetNotFoundError', EXIT.notFound],
  ['UsageError', EXIT.usage],
]);

class UsageError extends Error {}
class TargetNotFoundError extends Error {}

function classChain(err) {
  const names = [];
  for (let p = Object.getPrototypeOf(err); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    if (p.constructor?.name) names.push(p.constructor.name);
  }
  return names;
}

function exitCodeFor(err) {
  for (const name of classChain(err)) {
    if (CLASS_EXIT.has(name)) return CLASS_EXIT.get(name);
  }
  return EXIT.other;
}

function parse(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'metadata-url': { type: 'string' },
        'targets-url': { type: 'string' },
        root: { type: 'string' },
        cache: { type: 'string' },
        out: { type: 'string' },
        'timeout-ms': { type: 'string' },
      },
    });
  } catch (e) {
    throw new UsageError(e.message);
  }
  const v = parsed.values;
  for (const k of ['metadata-url', 'targets-url', 'root', 'cache', 'out']) {
    if (!v[k]) throw new UsageError(`--${k} is required`);
  }
  if (parsed.positionals.length === 0) throw new UsageError('at least one TARGETPATH is required');
  const seen = new Map();
  for (const t of parsed.positionals) {
    const base = path.posix.basename(t);
    if (seen.has(base)) throw new UsageError(`${seen.get(base)} and ${t} would both be written to --out as ${base}`);
    seen.set(base, t);
  }
  const timeout = v['timeout-ms'] === undefined ? 30000 : Number(v['timeout-ms']);
  if (!Number.isInteger(timeout) || timeout <= 0) throw new UsageError('--timeout-ms must be a positive integer');
  return {
    metadataUrl: v['metadata-url'],
    targetsUrl: v['targets-url'],
    root: v.root,
    cache: v.cache,
    out: v.out,
    timeout,
    targets: parsed.positionals,
  };
}

// tuf-js 5.0.1 wraps failures while loading snapshot and delegated targets metadata in
// a RuntimeError("Unable to load ... error <cause>"), losing the cause's class. To report
// the real class we remember the last error thrown by the trusted-set updates and the
// metadata fetches; each call resets it, so after a wrapped failure it holds the cause.
function trackCauses(updater) {
  const state = { cause: null };
  const wrap = (obj, name) => {
    const orig = obj?.[name];
    if (typeof orig !== 'function') return;
    obj[name] = function (...args) {
      state.cause = null;
      let result;
      try {
        result = orig.apply(this, args);
      } catch (e) {
        state.cause = e;
        throw e;
      }
      if (result && typeof result.then === 'function') {
        return result.catch((e) => {
          state.cause = e;
          throw e;
        });
      }
      return result;
    };
  };
  wrap(updater.trustedSet, 'updateSnapshot');
  wrap(updater.trustedSet, 'updateDelegatedTargets');
  wrap(updater.fetcher, 'downloadBytes');
  return state;
}

function sha256File(file) {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

async function run(opts) {
  fs.mkdirSync(opts.cache, { recursive: true });
  fs.mkdirSync(opts.out, { recursive: true });
  const cachedRoot = path.join(opts.cache, 'root.json');
  if (!fs.existsSync(cachedRoot)) {
    let data;
    try {
      data = fs.readFileSync(opts.root);
    } catch (e) {
      throw new UsageError(`cannot read --root: ${e.message}`);
    }
    fs.writeFileSync(cachedRoot, data);
  }

  const updater = new Updater({
    metadataBaseUrl: opts.metadataUrl,
    targetBaseUrl: opts.targetsUrl,
    metadataDir: opts.cache,
    targetDir: opts.out,
    // No retries: tests talk to a local server and want a fast, deterministic answer.
    config: { fetchTimeout: opts.timeout, fetchRetry: false },
  });
  const causes = trackCauses(updater);

  try {
    await updater.refresh();
    for (const targetPath of opts.targets) {
      const info = await updater.getTargetInfo(targetPath);
      if (!info) throw new TargetNotFoundError(`target ${targetPath} is not in any trusted targets metadata`);
      const tmpDir = fs.mkdtempSync(path.join(opts.out, '.tufjs-'));
      try {
        const tmpFile = path.join(tmpDir, 'target');
        await updater.downloadTarget(info, tmpFile);
        const dest = path.join(opts.out, path.posix.basename(targetPath));
        fs.renameSync(tmpFile, dest);
        const line = { path: targetPath, length: info.length, sha256: sha256File(dest), file: dest };
        process.stdout.write(JSON.stringify(line) + '\n');
      } finally {
        fs.rmSync(tmpDir, { recursive: true, force: true });
      }
    }
  } catch (e) {
    const m = /^(Unable to load [a-z ]+?) error /.exec(e?.message ?? '');
    if (m && causes.cause && classChain(e).includes('RuntimeError')) {
      const c = causes.cause;
      const detail = c.statusCode ? `HTTP ${c.statusCode}` : c.message;
      const err = new Error(`${m[1]}: ${detail}`, { cause: c });
      err.reportAs = c;
      throw err;
    }
    throw e;
  }
}

async function main() {
  let opts;
  try {
    const [major, minor] = process.versions.node.split('.').map(Number);
    if (major < 20 || (major === 20 && minor < 17)) {
      throw new Error(`tuf-js 5 needs Node.js 20.17 or later; this is ${process.version}`);
    }
    opts = parse(process.argv.slice(2));
    await run(opts);
    return 0;
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    const classed = err.reportAs ?? err;
    const line = { error: classed.constructor?.name || 'Error', message: err.message };
    process.stdout.write(JSON.stringify(line) + '\n');
    if (process.env.TUFJS_DEBUG_STACK) process.stderr.write(`${err.stack}\n`);
    return exitCodeFor(classed);
  }
}

process.exitCode = await main();
