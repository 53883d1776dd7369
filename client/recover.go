package client

import (
	"fmt"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// errParserPanic is what a panic inside go-tuf becomes: go-tuf v2.4.2's FromBytes
// dereferences a nil pointer on a null target ("targets":{"x":null}), which any server can
// send. It is malformed metadata (exit 10), not a crash of the downloader.
func errParserPanic(v any) error {
	return &parserPanic{&metadata.ErrRepository{Msg: fmt.Sprintf("the metadata could not be read: go-tuf's parser failed on it (%v); the server sent malformed metadata", v)}}
}

// parserPanic marks an error that was a panic (and is go-tuf's ErrRepository).
type parserPanic struct{ *metadata.ErrRepository }

func (p *parserPanic) Unwrap() error { return p.ErrRepository }

// noPanic runs f, turning a panic into errParserPanic.
func noPanic(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = errParserPanic(v)
		}
	}()
	return f()
}

// recovering is a tufView whose lookups turn a panic in go-tuf into an error: a lookup
// fetches and parses delegated roles on its way.
type recovering struct{ tufView }

func (r recovering) GetTargetInfo(targetPath string) (tf *metadata.TargetFiles, err error) {
	err = noPanic(func() error {
		var e error
		tf, e = r.tufView.GetTargetInfo(targetPath)
		return e
	})
	return tf, err
}

func (r recovering) GetTrustedMetadataSet() trustedmetadata.TrustedMetadata {
	return r.tufView.GetTrustedMetadataSet()
}
