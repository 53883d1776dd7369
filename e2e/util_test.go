package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func shaBytes(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
