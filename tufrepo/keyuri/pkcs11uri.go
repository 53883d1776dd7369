package keyuri

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PKCS11URI is a parsed RFC 7512 URI: which token, which key, which module and PIN.
type PKCS11URI struct {
	// Token selection; empty fields match any token.
	Token, Manufacturer, Serial, Model string
	SlotID                             *uint
	// Key selection: the label (object) and/or the CKA_ID bytes (id). One is required.
	Object string
	ID     []byte
	// ModulePath is the PKCS#11 library to load; ModuleName is looked up in the
	// standard module directories when no path is given.
	ModulePath, ModuleName string
	// PINValue or PINSource (a file path, or file: URI); neither means the PIN comes from
	// the environment variable CAIRN_PKCS11_PIN.
	PINValue, PINSource string
}

// Module directories searched for module-name, in order (Debian's layout, then common ones).
var moduleDirs = []string{"/usr/lib/x86_64-linux-gnu/pkcs11", "/usr/lib/aarch64-linux-gnu/pkcs11", "/usr/lib/pkcs11", "/usr/lib/softhsm", "/usr/local/lib/softhsm", "/usr/lib64/pkcs11"}

// ParsePKCS11 parses "pkcs11:path-attributes[?query-attributes]". Unknown standard
// attributes are refused (a typo must not select some other key); vendor attributes
// ("x-…") are ignored. Errors never quote the query, which may carry a PIN.
func ParsePKCS11(uri string) (*PKCS11URI, error) {
	rest, ok := strings.CutPrefix(uri, "pkcs11:")
	if !ok {
		return nil, fmt.Errorf("not a pkcs11: URI")
	}
	path, query, _ := strings.Cut(rest, "?")
	u := &PKCS11URI{}
	seen := map[string]bool{}
	each := func(part, sep, where string, set func(k, v string) error) error {
		if part == "" {
			return nil
		}
		for _, attr := range strings.Split(part, sep) {
			k, raw, ok := strings.Cut(attr, "=")
			if !ok || k == "" {
				return fmt.Errorf("pkcs11 URI: %s attribute %q is not name=value", where, redactAttr(attr))
			}
			if seen[k] {
				return fmt.Errorf("pkcs11 URI: attribute %q appears twice", k)
			}
			seen[k] = true
			v, err := url.PathUnescape(raw)
			if err != nil {
				return fmt.Errorf("pkcs11 URI: attribute %q: bad percent-encoding", k)
			}
			if err := set(k, v); err != nil {
				return err
			}
		}
		return nil
	}
	err := each(path, ";", "path", func(k, v string) error {
		switch k {
		case "token":
			u.Token = v
		case "manufacturer":
			u.Manufacturer = v
		case "serial":
			u.Serial = v
		case "model":
			u.Model = v
		case "object":
			u.Object = v
		case "id":
			u.ID = []byte(v)
		case "slot-id":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return fmt.Errorf("pkcs11 URI: slot-id %q is not a number", v)
			}
			s := uint(n)
			u.SlotID = &s
		case "type":
			if v != "private" {
				return fmt.Errorf("pkcs11 URI: type=%s: an online key URI names the private key (type=private or no type)", v)
			}
		case "library-manufacturer", "library-description", "library-version", "slot-description", "slot-manufacturer":
			// Informational: the module is chosen by module-path/module-name.
		default:
			if !strings.HasPrefix(k, "x-") {
				return fmt.Errorf("pkcs11 URI: unknown path attribute %q (RFC 7512: token, object, id, serial, slot-id, …)", k)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = each(query, "&", "query", func(k, v string) error {
		switch k {
		case "module-path":
			if !filepath.IsAbs(v) {
				return fmt.Errorf("pkcs11 URI: module-path must be absolute (e.g. /usr/lib/softhsm/libsofthsm2.so)")
			}
			u.ModulePath = v
		case "module-name":
			if strings.ContainsAny(v, `/\`) {
				return fmt.Errorf("pkcs11 URI: module-name is a name, not a path: use module-path")
			}
			u.ModuleName = v
		case "pin-value":
			u.PINValue = v
		case "pin-source":
			u.PINSource = v
		default:
			if !strings.HasPrefix(k, "x-") {
				return fmt.Errorf("pkcs11 URI: unknown query attribute %q (RFC 7512: module-path, module-name, pin-source, pin-value)", k)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, fmt.Errorf("pkcs11 URI %s names no key: add object=<label> or id=<%%-encoded CKA_ID>", Redact(uri))
	}
	if u.ModulePath == "" && u.ModuleName == "" {
		return nil, fmt.Errorf("pkcs11 URI %s names no module: add ?module-path=/path/to/module.so", Redact(uri))
	}
	if u.PINValue != "" && u.PINSource != "" {
		return nil, fmt.Errorf("pkcs11 URI %s: give pin-value or pin-source, not both", Redact(uri))
	}
	return u, nil
}

// redactAttr shows an attribute's name only when it could be a PIN.
func redactAttr(attr string) string {
	if strings.HasPrefix(attr, "pin") {
		return "pin…"
	}
	return attr
}

// module returns the path of the PKCS#11 library to load.
func (u *PKCS11URI) module() (string, error) {
	if u.ModulePath != "" {
		return u.ModulePath, nil
	}
	name := u.ModuleName
	if !strings.HasSuffix(name, ".so") {
		name += ".so"
	}
	for _, d := range moduleDirs {
		for _, n := range []string{name, "lib" + name} {
			p := filepath.Join(d, n)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("pkcs11 module %q not found in %s: give ?module-path=", u.ModuleName, strings.Join(moduleDirs, ", "))
}

// pin returns the user PIN.
func (u *PKCS11URI) pin(getenv func(string) string) (string, error) {
	switch {
	case u.PINValue != "":
		return u.PINValue, nil
	case u.PINSource != "":
		path := strings.TrimPrefix(u.PINSource, "file://")
		path = strings.TrimPrefix(path, "file:")
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("reading the PKCS#11 PIN from pin-source: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	default:
		if p := getenv("CAIRN_PKCS11_PIN"); p != "" {
			return p, nil
		}
		return "", fmt.Errorf("no PKCS#11 PIN: add ?pin-source=/path/to/pin-file to the key URI or set CAIRN_PKCS11_PIN")
	}
}
