// The parts of Node's crypto that @tufjs/models uses (createHash, createPublicKey, verify),
// on @noble/hashes and @noble/curves, which are synchronous as @tufjs/models needs
// (WebCrypto is asynchronous). Ed25519 is verified by RFC 8032 rules (not ZIP 215);
// ECDSA P-256 and P-384 over SHA-256 and SHA-384 with DER signatures, accepting high-S
// signatures as Go and OpenSSL do. RSA keys are refused (their signatures count as not
// verified).
import { Buffer } from 'buffer';
import { sha256, sha384, sha512 } from '@noble/hashes/sha2.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256, p384 } from '@noble/curves/nist.js';

const HASHES = { sha256, sha384, sha512 };

export function createHash(alg) {
  const h = HASHES[String(alg).toLowerCase().replace('-', '')];
  if (!h) throw new Error(`unsupported hash algorithm ${alg}`);
  const state = h.create();
  return {
    update(data, enc) {
      state.update(typeof data === 'string' ? Buffer.from(data, enc || 'utf8') : data);
      return this;
    },
    digest(enc) {
      const b = Buffer.from(state.digest());
      return enc ? b.toString(enc) : b;
    },
  };
}

// A minimal DER reader: enough for SubjectPublicKeyInfo.
function readTLV(b, off) {
  const tag = b[off];
  let len = b[off + 1];
  let p = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 3) throw new Error('DER length too long');
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | b[p + i];
    p += n;
  }
  if (p + len > b.length) throw new Error('truncated DER');
  return { tag, start: p, end: p + len };
}

function oid(bytes) {
  const parts = [Math.floor(bytes[0] / 40), bytes[0] % 40];
  let v = 0;
  for (let i = 1; i < bytes.length; i++) {
    v = v * 128 + (bytes[i] & 0x7f);
    if (!(bytes[i] & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

const OID_ED25519 = '1.3.101.112';
const OID_EC = '1.2.840.10045.2.1';
const CURVES = { '1.2.840.10045.3.1.7': ['prime256v1', p256, 'sha256'], '1.3.132.0.34': ['secp384r1', p384, 'sha384'] };

function parseSPKI(der) {
  const b = Uint8Array.from(der);
  const spki = readTLV(b, 0);
  if (spki.tag !== 0x30) throw new Error('not a SubjectPublicKeyInfo');
  const alg = readTLV(b, spki.start);
  const algOID = readTLV(b, alg.start);
  const kind = oid(b.subarray(algOID.start, algOID.end));
  let params = null;
  if (algOID.end < alg.end) {
    const p = readTLV(b, algOID.end);
    if (p.tag === 0x06) params = oid(b.subarray(p.start, p.end));
  }
  const bits = readTLV(b, alg.end);
  if (bits.tag !== 0x03 || b[bits.start] !== 0) throw new Error('bad public key bit string');
  return { kind, params, key: b.slice(bits.start + 1, bits.end) };
}

function fromPEM(pem) {
  const body = pem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, '').replace(/\s+/g, '');
  return Buffer.from(body, 'base64');
}

export function createPublicKey(input) {
  let der;
  if (typeof input === 'string') der = fromPEM(input);
  else if (input && typeof input.key === 'string') der = fromPEM(input.key);
  else if (input && input.key) der = input.key;
  else throw new Error('unsupported public key input');
  const { kind, params, key } = parseSPKI(der);
  if (kind === OID_ED25519) {
    if (key.length !== 32) throw new Error('bad Ed25519 key');
    return { type: 'public', asymmetricKeyType: 'ed25519', asymmetricKeyDetails: {}, raw: key };
  }
  if (kind === OID_EC && CURVES[params]) {
    const [namedCurve, curve, hash] = CURVES[params];
    curve.Point.fromBytes(key); // throws on a point not on the curve
    return { type: 'public', asymmetricKeyType: 'ec', asymmetricKeyDetails: { namedCurve }, raw: key, curve, hash };
  }
  throw new Error(`unsupported public key algorithm ${kind}`);
}

export function verify(alg, data, keyLike, sig) {
  const k = keyLike && keyLike.raw ? keyLike : keyLike && keyLike.key;
  if (!k || !k.raw) throw new Error('no public key');
  const msg = Uint8Array.from(data);
  const s = Uint8Array.from(sig);
  if (k.asymmetricKeyType === 'ed25519') {
    return ed25519.verify(s, msg, k.raw, { zip215: false });
  }
  if (k.asymmetricKeyType === 'ec') {
    if (alg && String(alg).toLowerCase() !== k.hash) throw new Error(`ECDSA over ${alg} does not match the key's curve`);
    return k.curve.verify(s, msg, k.raw, { prehash: true, lowS: false, format: 'der' });
  }
  throw new Error('unsupported key type');
}

export const constants = { RSA_PKCS1_PSS_PADDING: 6 };
export default { createHash, createPublicKey, verify, constants };
