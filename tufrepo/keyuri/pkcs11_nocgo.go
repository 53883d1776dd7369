//go:build !cgo

package keyuri

import (
	"fmt"

	"github.com/sigstore/sigstore/pkg/signature"
)

func openPKCS11(u *PKCS11URI, _ func(string) string) (signature.Signer, error) {
	// The container image of `make image` is such a build (static, no libc to load a
	// vendor's module with): say so, and what to use instead.
	return nil, fmt.Errorf("pkcs11 key URIs need a cairnd built with cgo (CGO_ENABLED=1): this build has none (the static container image of make image is one); use a KMS key URI, or build cairnd with cgo (deploy/Dockerfile) for an HSM")
}
