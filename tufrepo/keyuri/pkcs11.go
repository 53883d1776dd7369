//go:build cgo

package keyuri

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync"

	"github.com/miekg/pkcs11"
	"github.com/sigstore/sigstore/pkg/signature"
)

// PKCS#11 3.0 constants for Ed25519 that miekg/pkcs11 does not name.
const (
	ckkECEdwards = 0x00000040
	ckmEdDSA     = 0x00001057
)

var (
	oidP256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// pkcs11Signer signs with a private key that stays on a PKCS#11 token. It implements
// sigstore's signature.Signer, which go-tuf and Cairn's OnlineSigner take.
//
// A PKCS#11 session must not be used by two threads at once, so signing holds mu. A
// session that fails (token removed, HSM restarted) is closed and opened again on the
// next call, so that the caller's retry can succeed.
type pkcs11Signer struct {
	ctx   *pkcs11.Ctx
	slot  uint
	pin   string
	where string // redacted URI, for errors
	uri   *PKCS11URI

	pub     crypto.PublicKey
	ed25519 bool

	mu      sync.Mutex
	session pkcs11.SessionHandle
	key     pkcs11.ObjectHandle
	open    bool
}

func openPKCS11(u *PKCS11URI, getenv func(string) string) (signature.Signer, error) {
	where := u.describe()
	module, err := u.module()
	if err != nil {
		return nil, err
	}
	pin, err := u.pin(getenv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	p := pkcs11.New(module)
	if p == nil {
		return nil, fmt.Errorf("%s: cannot load PKCS#11 module %s (missing, or not a PKCS#11 library)", where, module)
	}
	if err := p.Initialize(); err != nil && !isCKR(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		return nil, fmt.Errorf("%s: initialising PKCS#11 module %s: %w", where, module, err)
	}
	slot, err := findSlot(p, u)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	s := &pkcs11Signer{ctx: p, slot: slot, pin: pin, where: where, uri: u}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.openLocked(); err != nil {
		return nil, err
	}
	if err := s.readPublicLocked(); err != nil {
		s.closeLocked()
		return nil, err
	}
	return s, nil
}

func (u *PKCS11URI) describe() string {
	d := "pkcs11 key"
	if u.Object != "" {
		d += fmt.Sprintf(" %q", u.Object)
	}
	if len(u.ID) > 0 {
		d += fmt.Sprintf(" id %x", u.ID)
	}
	if u.Token != "" {
		d += fmt.Sprintf(" on token %q", u.Token)
	}
	return d
}

func isCKR(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}

// findSlot returns the one slot whose token matches the URI's token attributes.
func findSlot(p *pkcs11.Ctx, u *PKCS11URI) (uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("listing PKCS#11 slots: %w", err)
	}
	var found []uint
	var labels []string
	for _, sl := range slots {
		ti, err := p.GetTokenInfo(sl)
		if err != nil {
			continue
		}
		labels = append(labels, fmt.Sprintf("%q", ti.Label))
		if (u.SlotID != nil && *u.SlotID != sl) ||
			(u.Token != "" && u.Token != ti.Label) ||
			(u.Serial != "" && u.Serial != ti.SerialNumber) ||
			(u.Manufacturer != "" && u.Manufacturer != ti.ManufacturerID) ||
			(u.Model != "" && u.Model != ti.Model) {
			continue
		}
		found = append(found, sl)
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return 0, fmt.Errorf("no PKCS#11 token matches (tokens present: %v): check token= / serial= / slot-id=", labels)
	default:
		return 0, fmt.Errorf("%d PKCS#11 tokens match (%v): add token= or serial= to choose one", len(found), labels)
	}
}

// openLocked opens a session, logs in and finds the private key.
func (s *pkcs11Signer) openLocked() error {
	sess, err := s.ctx.OpenSession(s.slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return fmt.Errorf("%s: opening a PKCS#11 session: %w", s.where, err)
	}
	if err := s.ctx.Login(sess, pkcs11.CKU_USER, s.pin); err != nil && !isCKR(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		s.ctx.CloseSession(sess)
		if isCKR(err, pkcs11.CKR_PIN_INCORRECT) {
			return fmt.Errorf("%s: the token refused the PIN (CKR_PIN_INCORRECT): check pin-source / CAIRN_PKCS11_PIN", s.where)
		}
		return fmt.Errorf("%s: logging in to the token: %w", s.where, err)
	}
	key, err := s.findLocked(sess, pkcs11.CKO_PRIVATE_KEY)
	if err != nil {
		s.ctx.CloseSession(sess)
		return err
	}
	s.session, s.key, s.open = sess, key, true
	return nil
}

func (s *pkcs11Signer) closeLocked() {
	if s.open {
		_ = s.ctx.CloseSession(s.session)
		s.open = false
	}
}

// findLocked returns the one object of class with the URI's label and/or id.
func (s *pkcs11Signer) findLocked(sess pkcs11.SessionHandle, class uint) (pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)}
	if s.uri.Object != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, s.uri.Object))
	}
	if len(s.uri.ID) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, s.uri.ID))
	}
	if err := s.ctx.FindObjectsInit(sess, tmpl); err != nil {
		return 0, fmt.Errorf("%s: searching the token: %w", s.where, err)
	}
	objs, _, err := s.ctx.FindObjects(sess, 2)
	if ferr := s.ctx.FindObjectsFinal(sess); err == nil {
		err = ferr
	}
	if err != nil {
		return 0, fmt.Errorf("%s: searching the token: %w", s.where, err)
	}
	kind := map[uint]string{pkcs11.CKO_PRIVATE_KEY: "private", pkcs11.CKO_PUBLIC_KEY: "public"}[class]
	switch len(objs) {
	case 1:
		return objs[0], nil
	case 0:
		return 0, fmt.Errorf("%s: no %s key with that label/id on the token (list them with pkcs11-tool -O)", s.where, kind)
	default:
		return 0, fmt.Errorf("%s: more than one %s key matches: add id= to the URI", s.where, kind)
	}
}

// readPublicLocked reads the key type and public key from the public key object.
func (s *pkcs11Signer) readPublicLocked() error {
	pubObj, err := s.findLocked(s.session, pkcs11.CKO_PUBLIC_KEY)
	if err != nil {
		return err
	}
	attrs, err := s.ctx.GetAttributeValue(s.session, pubObj, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
	})
	if err != nil {
		return fmt.Errorf("%s: reading the public key: %w (only ECDSA P-256 and Ed25519 keys are supported)", s.where, err)
	}
	keyType, params, point := attrs[0].Value, attrs[1].Value, attrs[2].Value
	var kt uint // a CK_ULONG, in the host's byte order
	switch len(keyType) {
	case 8:
		kt = uint(binary.NativeEndian.Uint64(keyType))
	case 4:
		kt = uint(binary.NativeEndian.Uint32(keyType))
	default:
		return fmt.Errorf("%s: the token gave a %d-byte key type", s.where, len(keyType))
	}
	// CKA_EC_POINT is a DER OCTET STRING around the point; some tokens give it raw.
	var raw []byte
	if rest, err := asn1.Unmarshal(point, &raw); err != nil || len(rest) != 0 {
		raw = point
	}
	switch kt {
	case pkcs11.CKK_EC:
		var oid asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(params, &oid); err != nil || !oid.Equal(oidP256) {
			return fmt.Errorf("%s: the EC key is not on P-256: only ECDSA P-256 and Ed25519 keys are supported", s.where)
		}
		x, y := elliptic.Unmarshal(elliptic.P256(), raw) //nolint:staticcheck // the point is an uncompressed SEC 1 encoding
		if x == nil {
			return fmt.Errorf("%s: the token's EC point is not an uncompressed P-256 point", s.where)
		}
		s.pub = &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
	case ckkECEdwards:
		if !isEd25519Params(params) {
			return fmt.Errorf("%s: the Edwards key is not Ed25519", s.where)
		}
		if len(raw) != ed25519.PublicKeySize {
			return fmt.Errorf("%s: the Ed25519 public key has %d bytes, not 32", s.where, len(raw))
		}
		s.pub, s.ed25519 = ed25519.PublicKey(raw), true
	default:
		return fmt.Errorf("%s: key type 0x%x is not supported: create an ECDSA P-256 or Ed25519 key", s.where, kt)
	}
	return nil
}

// isEd25519Params accepts both encodings tokens use: the RFC 8410 OID and the
// PrintableString "edwards25519" (SoftHSM2).
func isEd25519Params(params []byte) bool {
	var oid asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(params, &oid); err == nil {
		return oid.Equal(oidEd25519)
	}
	var name string
	if _, err := asn1.UnmarshalWithParams(params, &name, "printable"); err == nil {
		return name == "edwards25519"
	}
	return false
}

// PublicKey returns the key read from the token when the signer was opened.
func (s *pkcs11Signer) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return s.pub, nil
}

// SignMessage signs message on the token: Ed25519 over the message itself, ECDSA over its
// SHA-256 (returned ASN.1 DER encoded, as go-tuf's verifier expects). For ECDSA a
// SHA-256 digest passed with options.WithDigest is signed as it is, without reading the
// message (the publisher hashes a multi-megabyte snapshot once).
func (s *pkcs11Signer) SignMessage(message io.Reader, opts ...signature.SignOption) ([]byte, error) {
	var digest []byte
	for _, o := range opts {
		o.ApplyDigest(&digest)
	}
	var mech []*pkcs11.Mechanism
	var input []byte
	switch {
	case !s.ed25519 && len(digest) == sha256.Size:
		mech, input = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}, digest
	case !s.ed25519:
		msg, err := io.ReadAll(message)
		if err != nil {
			return nil, fmt.Errorf("reading message: %w", err)
		}
		sum := sha256.Sum256(msg)
		mech, input = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}, sum[:]
	default:
		msg, err := io.ReadAll(message)
		if err != nil {
			return nil, fmt.Errorf("reading message: %w", err)
		}
		mech, input = []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmEdDSA, nil)}, msg
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		if err := s.openLocked(); err != nil {
			return nil, err
		}
	}
	sig, err := s.signLocked(mech, input)
	if err != nil {
		// The session may be dead (token removed, HSM restarted): start afresh next time.
		s.closeLocked()
		return nil, fmt.Errorf("%s: signing: %w", s.where, err)
	}
	if s.ed25519 {
		return sig, nil
	}
	if len(sig) != 64 {
		return nil, fmt.Errorf("%s: the token returned a %d-byte ECDSA signature, not 64", s.where, len(sig))
	}
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
}

func (s *pkcs11Signer) signLocked(mech []*pkcs11.Mechanism, input []byte) ([]byte, error) {
	if err := s.ctx.SignInit(s.session, mech, s.key); err != nil {
		return nil, err
	}
	return s.ctx.Sign(s.session, input)
}

var _ signature.Signer = (*pkcs11Signer)(nil)
