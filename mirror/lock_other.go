//go:build !unix

package mirror

// Lock is a no-op where flock does not exist: run one import at a time.
func (d *Dir) Lock() (unlock func(), err error) { return func() {}, nil }
