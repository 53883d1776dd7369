package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"golang.org/x/term"
)

// agreeToSign asks before signing, unless yes is set; on a no it says "Not signed.".
func (a *app) agreeToSign(yes bool, prompt string) (bool, error) {
	if yes {
		return true, nil
	}
	ok, err := a.confirm(prompt)
	if err == nil && !ok {
		a.notef("Not signed.\n")
	}
	return ok, err
}

// confirm asks a yes/no question on the terminal. Without a terminal it refuses: a
// signature is never given by default.
func (a *app) confirm(prompt string) (bool, error) {
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false, api.Errorf(api.CodeBadRequest, "not signed: confirm on a terminal, or pass --yes to sign without asking")
	}
	a.notef("%s", prompt)
	// Read byte by byte up to the newline, so nothing meant for a later prompt (the key
	// passphrase) is consumed.
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := f.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			line = append(line, b[0])
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, fmt.Errorf("reading the answer: %w", err)
		}
	}
	ans := strings.ToLower(strings.TrimSpace(string(line)))
	return ans == "y" || ans == "yes", nil
}
