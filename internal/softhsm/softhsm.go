// Package softhsm sets up SoftHSM2 tokens for tests, with SoftHSM's and OpenSC's own
// tools (softhsm2-util, pkcs11-tool), so that Cairn's PKCS#11 code is tested against a
// real token whose keys it never sees.
package softhsm

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Key types for GenerateKey, as pkcs11-tool names them.
const (
	ECDSAP256 = "EC:prime256v1"
	Ed25519   = "EC:edwards25519"
)

var modulePaths = []string{"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so", "/usr/local/lib/softhsm/libsofthsm2.so"}

// Token is an initialised SoftHSM2 token in a directory of its own.
type Token struct {
	Conf, Label, PIN, Module string
}

// Setup creates a SoftHSM2 configuration and one token under dir, and points this
// process's SOFTHSM2_CONF at it. SoftHSM reads the variable when the module is first
// initialised, so call Setup before any PKCS#11 use in the process (from TestMain).
func Setup(dir, label string) (*Token, error) {
	module := ""
	for _, p := range modulePaths {
		if _, err := os.Stat(p); err == nil {
			module = p
			break
		}
	}
	for _, tool := range []string{"softhsm2-util", "pkcs11-tool"} {
		if _, err := exec.LookPath(tool); err != nil || module == "" {
			return nil, fmt.Errorf("SoftHSM2 is not installed (%s or libsofthsm2.so missing): run `make hsm` (apt-get install softhsm2 opensc); `make test` does", tool)
		}
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, err
	}
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return nil, err
	}
	t := &Token{Conf: conf, Label: label, PIN: "4711", Module: module}
	if err := t.run("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", t.PIN, "--so-pin", "0815"); err != nil {
		return nil, err
	}
	return t, nil
}

// Another initialises a second token in the same SoftHSM2 configuration.
func (t *Token) Another(label string) (*Token, error) {
	o := &Token{Conf: t.Conf, Label: label, PIN: t.PIN, Module: t.Module}
	if err := o.run("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", o.PIN, "--so-pin", "0815"); err != nil {
		return nil, err
	}
	return o, nil
}

// GenerateKey makes a key pair on the token that never leaves it and returns its URI.
func (t *Token) GenerateKey(label string, id byte, keyType string) (string, error) {
	err := t.run("pkcs11-tool", "--module", t.Module, "--token-label", t.Label, "--login", "--pin", t.PIN,
		"--keypairgen", "--key-type", keyType, "--label", label, "--id", fmt.Sprintf("%02x", id))
	if err != nil {
		return "", err
	}
	return t.URI(label), nil
}

// URI is the RFC 7512 URI of the key labelled label, with the PIN in the URI.
func (t *Token) URI(label string) string {
	return "pkcs11:token=" + url.PathEscape(t.Label) + ";object=" + url.PathEscape(label) +
		"?module-path=" + t.Module + "&pin-value=" + t.PIN
}

func (t *Token) run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+t.Conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args[:2], " "), err, out)
	}
	return nil
}
