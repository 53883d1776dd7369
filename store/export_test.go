package store

// ForgetFileLists empties the cache of projects' published files, so a benchmark can
// measure UploadState reading them all from PostgreSQL.
func (db *DB) ForgetFileLists() {
	db.files.mu.Lock()
	db.files.m = nil
	db.files.mu.Unlock()
}
