#!/usr/bin/env bash
# Installs the real OCI clients the oci tests drive into <user cache>/cairn/ociclients
# (the tests install oras and crane themselves; cosign takes ~15 minutes cold, so only this
# script builds it). Versions that build with Go 1.26 (see ../shared/NOTES.md).
set -euo pipefail
export GOTOOLCHAIN=local GOFLAGS=
dir="${XDG_CACHE_HOME:-$HOME/.cache}/cairn/ociclients"
mkdir -p "$dir"
cd "$(mktemp -d)"
install() { # name package@version
	if [ -x "$dir/$1" ]; then echo "$1: cached"; return; fi
	echo "$1: go install $2"
	GOBIN="$dir" go install "$2"
}
install oras oras.land/oras/cmd/oras@v1.3.6
install crane github.com/google/go-containerregistry/cmd/crane@v0.22.1
install cosign github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5
if [ ! -x "$dir/notation" ]; then
	# notation's go.mod has replace directives, so `go install` refuses it: build a copy.
	echo "notation: building v1.3.2 from the module cache"
	src=$(go mod download -json github.com/notaryproject/notation@v1.3.2 | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	cp -r "$src" notation && chmod -R u+w notation
	(cd notation && go build -o "$dir/notation" ./cmd/notation)
fi
ls -l "$dir"
