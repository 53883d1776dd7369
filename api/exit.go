package api

// ExitClass is the cairn CLI's stable exit status for an outcome (DESIGN.md "Errors and bad
// input"); client.ExitCode is this type. It lives here, beside the error registry, because
// every registered code names the class the CLI exits with when the server answers it.
// Scripts switch on these numbers, so they never change meaning.
type ExitClass int

const (
	// ExitOK: everything verified and succeeded.
	ExitOK ExitClass = 0
	// ExitHashMismatch: a file or metadata file does not have the length or hash that
	// signed metadata lists for it.
	ExitHashMismatch ExitClass = 1
	// ExitSignatureInvalid: a signature by a trusted key does not verify, or there are
	// fewer valid signatures than the threshold.
	ExitSignatureInvalid ExitClass = 2
	// ExitKeyNotTrusted: metadata is signed by keys that the delegating role does not
	// trust for it.
	ExitKeyNotTrusted ExitClass = 3
	// ExitPolicy: the metadata verified but a rule refused it: expired, rolled back, a
	// version out of order, a published file changed, or the server refused by policy.
	ExitPolicy ExitClass = 4
	// ExitMalformed: input that cannot be parsed or is not well formed: bad metadata,
	// a bad name, path, key or command line.
	ExitMalformed ExitClass = 10
	// ExitFailure: anything else (network, server unavailable, not found, local I/O, a
	// token the server does not accept).
	ExitFailure ExitClass = 20
)

// String names an exit class for messages.
func (c ExitClass) String() string {
	switch c {
	case ExitOK:
		return "ok"
	case ExitHashMismatch:
		return "hash mismatch"
	case ExitSignatureInvalid:
		return "signature invalid"
	case ExitKeyNotTrusted:
		return "key not trusted"
	case ExitPolicy:
		return "policy rejection"
	case ExitMalformed:
		return "malformed input"
	default:
		return "failure"
	}
}
