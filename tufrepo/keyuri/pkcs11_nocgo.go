//go:build !cgo

package keyuri

import (
	"fmt"

	"github.com/sigstore/sigstore/pkg/signature"
)

func openPKCS11(u *PKCS11URI, _ func(string) string) (signature.Signer, error) {
	return nil, fmt.Errorf("pkcs11 key URIs need a cairnd built with cgo (CGO_ENABLED=1): this build has none")
}
