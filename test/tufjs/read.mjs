#!/usr/bin/env node
// read.mjs: how tuf-js reads a targets metadata document, for Cairn's parser-differential
// tests (tufrepo/differential_test.go).
//
// Each line on stdin is {"id": ..., "doc": <base64 bytes>, "delegator": <base64 bytes>,
// "role": <name>}: a targets metadata document and the targets metadata that delegates
// <role> to it. The document's bytes are read exactly as tuf-js's updater reads a
// downloaded file (JSON.parse of the bytes decoded as UTF-8), then verified with
// Metadata.verifyDelegate. Each line on stdout is
//   {"id", "parsed": bool, "error"?, "verified": bool, "verifyError"?,
//    "version", "expires", "targets": {path: {"length", "hashes", "extra"}}}
// where "extra" is the canonical JSON of the target's other fields (custom data), as the
// signature covers them.

import readline from 'node:readline';
import { Metadata, MetadataKind } from '@tufjs/models';
import { canonicalize } from '@tufjs/canonical-json';

function read(b64) {
  return JSON.parse(Buffer.from(b64, 'base64').toString('utf8'));
}

function summary(md) {
  const targets = {};
  for (const [path, tf] of Object.entries(md.signed.targets)) {
    targets[path] = {
      length: tf.length,
      hashes: tf.hashes,
      extra: canonicalize(tf.unrecognizedFields ?? {}),
    };
  }
  return { version: md.signed.version, expires: md.signed.expires, targets };
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  const req = JSON.parse(line);
  const out = { id: req.id, parsed: false, verified: false };
  let md;
  try {
    md = Metadata.fromJSON(MetadataKind.Targets, read(req.doc));
    out.parsed = true;
    Object.assign(out, summary(md));
  } catch (e) {
    out.error = `${e.constructor?.name}: ${e.message}`;
  }
  if (md) {
    try {
      const delegator = Metadata.fromJSON(MetadataKind.Targets, read(req.delegator));
      delegator.verifyDelegate(req.role, md);
      out.verified = true;
    } catch (e) {
      out.verifyError = `${e.constructor?.name}: ${e.message}`;
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}
