package blobstore

// NamedPutsOnly makes c (an *FS) receive every Put into a named, locked temporary file, as
// where files cannot be made without a name, so that tests cover that path on Linux too.
func NamedPutsOnly(c Content) { c.(*FS).unnamed = false }
