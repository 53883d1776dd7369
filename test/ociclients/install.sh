#!/usr/bin/env bash
# Installs the OCI clients that e2e/ociclients_test.go runs against a real cairnd, at pinned
# versions, into a cache directory that survives between runs: by default the user's
# <cache>/cairn/ociclients, which oci/clients_test.go and `make oci-clients` use too, so
# the machine builds each client once. Idempotent: a client already there at the right
# version is left alone; one at another version is rebuilt. Nothing here touches the
# repository's go.mod.
#
#   test/ociclients/install.sh [-d DIR] CLIENT...    CLIENT: crane oras notation cosign
#
# crane, oras and cosign come from `go install pkg@version` (GOBIN=DIR). notation refuses
# `go install` (its go.mod has replace directives), so its module is downloaded, copied out
# of the module cache, made writable and built with `go build ./cmd/notation`. cosign takes
# about 15 minutes to build on a cold Go cache: it has its own make target.
set -euo pipefail

CRANE_VERSION=v0.22.1
ORAS_VERSION=v1.3.6
NOTATION_VERSION=v1.3.2
COSIGN_VERSION=v2.6.5

export GOTOOLCHAIN=local
GO=${GO:-go}
dir="${XDG_CACHE_HOME:-$HOME/.cache}/cairn/ociclients"
if [ "${1:-}" = "-d" ]; then
	dir=$2
	shift 2
fi
[ $# -gt 0 ] || { echo "usage: $0 [-d DIR] crane|oras|notation|cosign..." >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# One installer at a time per directory: concurrent make runs wait instead of building twice.
exec 9>"$dir/.install.lock"
flock 9

# modversion BIN MODULE: the version of MODULE that BIN was built from (go version -m).
modversion() {
	"$GO" version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }'
}

# installed NAME: the version of the client in $dir, or nothing.
installed() {
	local bin="$dir/$1"
	[ -x "$bin" ] || return 0
	case $1 in
	crane) modversion "$bin" github.com/google/go-containerregistry ;;
	oras) modversion "$bin" oras.land/oras ;;
	cosign) modversion "$bin" github.com/sigstore/cosign/v2 ;;
	# A build without the release ldflags says v1.3.2+unreleased: the same source.
	notation) "$bin" version 2>/dev/null | awk '$1 == "Version:" { sub(/\+.*/, "", $2); print $2 }' ;;
	esac
}

gobuild_install() { # NAME PKG VERSION
	echo "ociclients: GOBIN=$dir $GO install $2@$3"
	GOBIN="$dir" "$GO" install "$2@$3"
}

notation_build() {
	local src tmp
	echo "ociclients: $GO mod download github.com/notaryproject/notation@$NOTATION_VERSION"
	src=$("$GO" mod download -json "github.com/notaryproject/notation@$NOTATION_VERSION" | awk -F'"' '$2 == "Dir" { print $4 }')
	[ -d "$src" ] || { echo "ociclients: notation module not found in the module cache" >&2; exit 1; }
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	echo "ociclients: copying $src to $tmp, making it writable, go build ./cmd/notation"
	cp -R "$src" "$tmp/notation"
	chmod -R u+w "$tmp/notation"
	# The release build's ldflags: an empty BuildMetadata makes `notation version` print
	# exactly $NOTATION_VERSION, which is what the version check reads.
	(cd "$tmp/notation" && GOFLAGS=-mod=readonly "$GO" build -o "$dir/notation.tmp" \
		-ldflags "-X github.com/notaryproject/notation/internal/version.BuildMetadata= -X github.com/notaryproject/notation/internal/version.GitCommit=$NOTATION_VERSION" \
		./cmd/notation)
	mv "$dir/notation.tmp" "$dir/notation"
}

for c in "$@"; do
	case $c in
	crane) want=$CRANE_VERSION ;;
	oras) want=$ORAS_VERSION ;;
	notation) want=$NOTATION_VERSION ;;
	cosign) want=$COSIGN_VERSION ;;
	*) echo "ociclients: unknown client $c (crane, oras, notation, cosign)" >&2; exit 2 ;;
	esac
	have=$(installed "$c")
	if [ "$have" = "$want" ]; then
		echo "ociclients: $c $want is installed in $dir"
		continue
	fi
	if [ -n "$have" ]; then
		echo "ociclients: $c in $dir is ${have}, not $want: rebuilding"
	else
		echo "ociclients: $c $want is not in $dir: installing"
	fi
	case $c in # measured on 2 busy cores with a warm module cache; cold adds the downloads
	crane) took="~30 s" ;;
	oras | notation) took="~40 s" ;;
	cosign) took="~15 min" ;;
	esac
	echo "ociclients: building $c $want into $dir ($took once, cached after)"
	start=$(date +%s)
	case $c in
	crane) gobuild_install crane github.com/google/go-containerregistry/cmd/crane "$want" ;;
	oras) gobuild_install oras oras.land/oras/cmd/oras "$want" ;;
	cosign) gobuild_install cosign github.com/sigstore/cosign/v2/cmd/cosign "$want" ;;
	notation) notation_build ;;
	esac
	have=$(installed "$c")
	if [ "$have" != "$want" ]; then
		echo "ociclients: $c in $dir reports version '${have}' after installing, want $want" >&2
		exit 1
	fi
	echo "ociclients: $c $want installed in $dir in $(($(date +%s) - start)) s"
done
