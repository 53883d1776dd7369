//go:build tools

// Package ociconformance pins the OCI distribution-spec conformance suite, built by
// oci/conformance_test.go from this separate module so the main go.mod stays free of it.
package ociconformance

import _ "github.com/opencontainers/distribution-spec/conformance"
