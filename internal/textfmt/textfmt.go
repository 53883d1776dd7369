// Package textfmt words counts and sizes the same way in every message the client and the
// CLI print.
package textfmt

import "fmt"

// Plural is "1 what" or "N whats".
func Plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Size gives a byte count, with a readable unit for larger files.
func Size(n int64) string {
	const unit = 1024
	if n < unit {
		return Plural(int(n), "byte")
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%d bytes (%.1f %ciB)", n, float64(n)/float64(div), "KMGTP"[exp])
}
