package tufrepo

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/internal/retry"
	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// OnlineSigner is a signer with its TUF key, as used for the timestamp, snapshot and
// recently-claimed roles.
type OnlineSigner struct {
	Signer signature.Signer
	Key    *metadata.Key
	KeyID  string
	// Retry says how failed signatures are retried; the zero value means DefaultRetry.
	Retry Retry
	// Observe, when set, is told of every signing attempt (for metrics and health).
	Observe func(SignAttempt)
}

// Retry bounds the retries of a failed signature. KMSs throttle and time out and HSMs
// restart; a publish that fails outright waits for the next kick, so a few quick retries
// inside one publish are worth it, but never so many that the publisher's lock is held
// for long.
type Retry struct {
	// Attempts is the total number of tries (at least 1).
	Attempts int
	// Initial is the wait before the second try; each later wait doubles, up to Max,
	// and is jittered to between half and all of it.
	Initial, Max time.Duration
}

// DefaultRetry tries 4 times over at most about 1.4 s.
func DefaultRetry() Retry {
	return Retry{Attempts: 4, Initial: 200 * time.Millisecond, Max: time.Second}
}

// SignAttempt is one try at signing.
type SignAttempt struct {
	KeyID    string
	Attempt  int // 1 for the first try
	Duration time.Duration
	Err      error // nil when it succeeded
}

// NewOnlineSigner reads the public key of s and computes its TUF key ID.
func NewOnlineSigner(ctx context.Context, s signature.Signer) (*OnlineSigner, error) {
	pub, err := s.PublicKey(options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("reading public key of signer: %w", err)
	}
	k, err := PublicKey(pub)
	if err != nil {
		return nil, err
	}
	return &OnlineSigner{Signer: s, Key: k, KeyID: KeyID(k)}, nil
}

// Sign signs payload and returns the TUF signature. Every signature is verified against
// the key before it is returned, so a KMS or HSM that answers with the wrong key or a
// corrupt signature fails the publish instead of publishing metadata clients refuse.
// Failures are retried as o.Retry says, until ctx ends.
func (o *OnlineSigner) Sign(ctx context.Context, payload []byte) (metadata.Signature, error) {
	r := o.Retry
	if r.Attempts < 1 {
		r = DefaultRetry()
	}
	// An ECDSA P-256 key signs the payload's SHA-256: hash it once here, for the signer
	// and for the check below, instead of once in each (a snapshot at 100k projects is
	// 5 MB: each pass is ~3 ms of a publish).
	pub, digest := o.digestKey(payload)
	attempt := 0
	policy := retry.Policy{Attempts: r.Attempts, Initial: r.Initial, Max: r.Max, Jitter: 0.5}
	sig, tries, err := retry.Do(ctx, policy, func(error) bool { return true }, func(ctx context.Context) ([]byte, time.Duration, error) {
		attempt++
		start := time.Now()
		var sig []byte
		var err error
		if pub != nil {
			sig, err = o.Signer.SignMessage(bytes.NewReader(payload), options.WithContext(ctx), options.WithDigest(digest), options.WithCryptoSignerOpts(crypto.SHA256))
			if err == nil && !ecdsa.VerifyASN1(pub, digest, sig) {
				err = fmt.Errorf("the signer returned a signature that does not verify with key %s: ECDSA verification failed", o.KeyID)
			}
		} else {
			sig, err = o.Signer.SignMessage(bytes.NewReader(payload), options.WithContext(ctx))
			if err == nil && o.Key != nil {
				if verr := VerifySignature(o.Key, payload, sig); verr != nil {
					err = fmt.Errorf("the signer returned a signature that does not verify with key %s: %w", o.KeyID, verr)
				}
			}
		}
		if o.Observe != nil {
			o.Observe(SignAttempt{KeyID: o.KeyID, Attempt: attempt, Duration: time.Since(start), Err: err})
		}
		return sig, 0, err
	})
	if err == nil {
		return metadata.Signature{KeyID: o.KeyID, Signature: sig}, nil
	}
	if tries == 1 {
		return metadata.Signature{}, fmt.Errorf("signing with key %s: %w", o.KeyID, err)
	}
	return metadata.Signature{}, fmt.Errorf("signing with key %s failed %d times: %w", o.KeyID, tries, err)
}

// digestKey returns the signer's ECDSA P-256 public key and the payload's SHA-256 when the
// TUF key is ecdsa-sha2-nistp256 (what TUF clients verify: ECDSA over SHA-256), and nil
// otherwise: Ed25519 signs the message itself.
func (o *OnlineSigner) digestKey(payload []byte) (*ecdsa.PublicKey, []byte) {
	if o.Key == nil || o.Key.Scheme != "ecdsa-sha2-nistp256" {
		return nil, nil
	}
	k, err := o.Key.ToPublicKey()
	if err != nil {
		return nil, nil
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, nil
	}
	sum := sha256.Sum256(payload)
	return pub, sum[:]
}

// Envelope builds the metadata file bytes {"signatures":[…],"signed":<signed>} around the
// canonical signed bytes, without re-serialising them. Canonical JSON leaves control
// characters in strings unescaped (ECDSA keys are PEM, with newlines), which is not valid
// JSON: those are escaped, which changes no parsed value, so clients re-canonicalise to the
// same signed bytes.
func Envelope(signed []byte, sigs []metadata.Signature) []byte {
	signed = escapeControl(signed)
	var b bytes.Buffer
	b.Grow(len(signed) + 64 + len(sigs)*200)
	b.WriteString(`{"signatures":[`)
	for i, s := range sigs {
		if i > 0 {
			b.WriteByte(',')
		}
		// Key IDs are hex, signatures hex-encoded: nothing to escape.
		b.WriteString(`{"keyid":"`)
		b.WriteString(s.KeyID)
		b.WriteString(`","sig":"`)
		b.WriteString(hex.EncodeToString(s.Signature))
		b.WriteString(`"}`)
	}
	b.WriteString(`],"signed":`)
	b.Write(signed)
	b.WriteByte('}')
	return b.Bytes()
}

// escapeControl replaces raw control bytes inside JSON strings (which canonical JSON leaves
// unescaped) with their JSON escapes, leaving whitespace between tokens as it is.
func escapeControl(c []byte) []byte {
	if !hasControl(c) {
		return c
	}
	out := make([]byte, 0, len(c)+64)
	inString, escaped := false, false
	for _, ch := range c {
		if !inString {
			inString = ch == '"'
			out = append(out, ch)
			continue
		}
		switch {
		case escaped:
			escaped = false
			out = append(out, ch)
		case ch == '\\':
			escaped = true
			out = append(out, ch)
		case ch == '"':
			inString = false
			out = append(out, ch)
		case ch == '\n':
			out = append(out, '\\', 'n')
		case ch == '\r':
			out = append(out, '\\', 'r')
		case ch == '\t':
			out = append(out, '\\', 't')
		case ch < 0x20:
			out = append(out, fmt.Sprintf("\\u%04x", ch)...)
		default:
			out = append(out, ch)
		}
	}
	return out
}

// hasControl reports whether c holds a byte below 0x20. It reads eight bytes at a time:
// it scans every snapshot (50 MB at 1M projects, where a byte loop took 13 ms per publish).
// For a word x, (x - 0x20 in each byte) & ^x & 0x80 in each byte is non-zero exactly when
// some byte of x is below 0x20 (the borrow chain starts only at such a byte).
func hasControl(c []byte) bool {
	const ones, highs = 0x2020202020202020, 0x8080808080808080
	for len(c) >= 8 {
		x := binary.LittleEndian.Uint64(c)
		if (x-ones)&^x&highs != 0 {
			return true
		}
		c = c[8:]
	}
	for _, b := range c {
		if b < 0x20 {
			return true
		}
	}
	return false
}

// SignEnvelope signs the canonical bytes with each signer and returns the metadata file.
func SignEnvelope(ctx context.Context, signed []byte, signers ...*OnlineSigner) ([]byte, error) {
	sigs := make([]metadata.Signature, 0, len(signers))
	for _, s := range signers {
		sig, err := s.Sign(ctx, signed)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, sig)
	}
	return Envelope(signed, sigs), nil
}

// Canonical encodes a metadata "signed" value as canonical JSON, as every TUF client does
// before it verifies a signature.
func Canonical(v any) ([]byte, error) {
	b, err := cjson.EncodeCanonical(v)
	if err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	return b, nil
}

// signedOf extracts the raw "signed" value of a metadata file.
func signedOf(raw []byte) (json.RawMessage, error) {
	var env struct {
		Signed json.RawMessage `json:"signed"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, err
	}
	return env.Signed, nil
}

// Probe signs a test message and verifies the signature against the signer's public key,
// so that an unreachable KMS or a key that does not match is found at start-up, not at the
// first publish.
func (o *OnlineSigner) Probe(ctx context.Context) error {
	msg := []byte("cairn online signer probe")
	sig, err := o.Sign(ctx, msg)
	if err != nil {
		return err
	}
	if err := VerifySignature(o.Key, msg, sig.Signature); err != nil {
		return fmt.Errorf("key %s: the signer's signature does not verify with its public key: %w", o.KeyID, err)
	}
	return nil
}
