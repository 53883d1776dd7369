// Package keyuri is the one place that turns an online key URI into a signer: encrypted
// key files for development, cloud KMSs and Vault through sigstore's kms providers, and
// HSMs through PKCS#11.
//
// It is separate from tufrepo so that the KMS client libraries, and cgo for PKCS#11, are
// linked only into the programs that hold online keys (cairnd), not into every user of the
// TUF logic.
package keyuri

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	"github.com/sigstore/sigstore/pkg/signature/options"

	// The KMS providers, registered with sigstore's kms package by import.
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/fake"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)

// kmsSchemes are the URI schemes served by sigstore's kms providers.
var kmsSchemes = []string{"awskms", "gcpkms", "azurekms", "hashivault", "openbao", "fakekms"}

// Open returns the signer a key URI names:
//
//	file:///abs/key.json[?passphrase-file=/abs/pass|?passphrase-env=VAR]   encrypted Cairn key file
//	awskms://[ENDPOINT]/KEY-ID-OR-ALIAS-OR-ARN                              AWS KMS
//	gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V]
//	azurekms://VAULT.vault.azure.net/KEY
//	hashivault://KEY, openbao://KEY                                          Vault/OpenBao transit
//	fakekms://NAME                                                           in-process, tests only
//	pkcs11:token=T;object=O[;id=%01]?module-path=/lib.so&pin-source=/file   HSM (RFC 7512)
//
// KMS providers read their credentials the way their SDKs do (environment, instance
// metadata, VAULT_ADDR/VAULT_TOKEN). Keys must be ECDSA P-256 or Ed25519. getenv supplies
// the environment for passphrases and PINs, so tests and the daemon decide where it comes
// from. Errors never quote the URI's query, which may carry a PIN.
func Open(ctx context.Context, uri string, getenv func(string) string) (signature.Signer, error) {
	if strings.HasPrefix(uri, "pkcs11:") {
		u, err := ParsePKCS11(uri)
		if err != nil {
			return nil, err
		}
		return openPKCS11(u, getenv)
	}
	u, err := url.Parse(uri)
	if err != nil {
		// Not %w: url.Error quotes the whole URI, which may carry a PIN or token.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("parsing key URI: %v", err)
	}
	switch {
	case u.Scheme == "file":
		return tufrepo.FileSignerFromURI(ctx, uri, getenv)
	case slices.Contains(kmsSchemes, u.Scheme):
		return openKMS(ctx, uri, u)
	default:
		return nil, fmt.Errorf("key URI %q: unknown scheme %q: use file://, pkcs11: or one of %s://", Redact(uri), u.Scheme, strings.Join(kmsSchemes, "://, "))
	}
}

// openKMS asks sigstore's provider for the key. The hash function is part of the signer:
// SHA-256 for ECDSA P-256, none for Ed25519 (which signs the message itself), so the key
// type is read first and the signer is asked for again if it is Ed25519.
func openKMS(ctx context.Context, uri string, u *url.URL) (signature.Signer, error) {
	sv, err := kms.Get(ctx, uri, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("opening %s key %s: %w", u.Scheme, Redact(uri), err)
	}
	pub, err := sv.PublicKey(options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("reading the public key of %s: %w", Redact(uri), err)
	}
	if _, ok := pub.(ed25519.PublicKey); ok {
		if sv, err = kms.Get(ctx, uri, crypto.Hash(0)); err != nil {
			return nil, fmt.Errorf("opening %s key %s: %w", u.Scheme, Redact(uri), err)
		}
	}
	if _, err := tufrepo.PublicKey(pub); err != nil {
		return nil, fmt.Errorf("key %s: %w (create an ECDSA P-256 or Ed25519 key)", Redact(uri), err)
	}
	return sv, nil
}

// Redact returns uri without its query (PINs, passphrase locations) and user information,
// for logs and errors.
func Redact(uri string) string {
	if strings.HasPrefix(uri, "pkcs11:") {
		path, _, _ := strings.Cut(uri, "?")
		return path
	}
	u, err := url.Parse(uri)
	if err != nil {
		// Keep only the scheme: the rest may hold secrets we cannot locate.
		scheme, _, _ := strings.Cut(uri, ":")
		return scheme + ":…"
	}
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	return u.String()
}
