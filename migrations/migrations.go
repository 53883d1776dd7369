// Package migrations embeds Cairn's SQL migrations (goose format).
package migrations

import "embed"

// FS holds the *.sql migrations, applied in file-name order.
//
//go:embed *.sql
var FS embed.FS
