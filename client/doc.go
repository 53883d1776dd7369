// Package client is the Go SDK for Cairn: a REST client for the /api/v1 endpoints (API),
// a verifying TUF client for release metadata and files (Repo), helpers that build and
// sign the next version of a project role, and the mapping of failures to the CLI's
// stable exit codes (Classify).
//
// The REST API is trusted only for writes and for information a maintainer wants to see;
// anything a downloader relies on (which releases exist, which bytes a file has) comes
// from Repo, which verifies every byte against the pinned root of trust.
package client
