package cli

import (
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/internal/textfmt"
)

// short shortens a key ID for messages; 16 hex digits tell keys apart.
func short(keyID string) string {
	if len(keyID) > 16 {
		return keyID[:16]
	}
	return keyID
}

// when formats a time with how far it is from now.
func when(t, now time.Time) string {
	s := t.UTC().Format("2006-01-02 15:04 UTC")
	d := t.Sub(now)
	switch {
	case d > 0:
		return s + " (in " + roughDuration(d) + ")"
	case d < 0:
		return s + " (" + roughDuration(-d) + " ago)"
	}
	return s
}

func roughDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	}
	return "a moment"
}

// untilText formats a time with how far it is from now, in whole days rounded to the
// nearest (an expiry asked for as 365d shows as 365 days, not 364).
func untilText(t, now time.Time) string {
	s := fmtUTC(t)
	d := t.Sub(now)
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%s (in %d days)", s, int((d+12*time.Hour)/(24*time.Hour)))
	case d <= -48*time.Hour:
		return fmt.Sprintf("%s (%d days ago)", s, int((-d+12*time.Hour)/(24*time.Hour)))
	case d > 0:
		return s + " (in " + roughDuration(d) + ")"
	case d < 0:
		return s + " (" + roughDuration(-d) + " ago)"
	}
	return s
}

func fmtUTC(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

func plural(n int, what string) string { return textfmt.Plural(n, what) }

// size gives a byte count, with a readable unit for larger files.
func size(n int64) string { return textfmt.Size(n) }
