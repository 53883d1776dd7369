package blobstore

// Digests name their algorithm ("sha256:<hex>", "sha512:<hex>"; api.ParseDigest reads
// them). Blobs of either algorithm live side by side, so a sha256 OCI layer and a release
// file with the same bytes are one blob.
