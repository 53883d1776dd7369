// Package attesttest makes Sigstore bundles for tests with sigstore-go's in-process
// VirtualSigstore (a Fulcio-like CA, a Rekor log key, a timestamp authority), in the v0.3
// protobuf-specs JSON that cosign and sigstore-go write.
package attesttest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"google.golang.org/protobuf/encoding/protojson"
)

// Sigstore is an in-process Sigstore instance.
type Sigstore struct {
	VS *ca.VirtualSigstore
}

// New starts one.
func New(t testing.TB) *Sigstore {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	return &Sigstore{VS: vs}
}

// TrustedRoot is its trusted_root.json (media type …trustedroot+json;version=0.1). The log
// is valid from an hour before the call to an hour after it.
func (s *Sigstore) TrustedRoot(t testing.TB) []byte {
	t.Helper()
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, s.VS.FulcioCertificateAuthorities(), rawIDs(t, s.VS.CTLogs()), s.VS.TimestampingAuthorities(), rawIDs(t, s.VS.RekorLogs()))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// rawIDs gives each log its raw key ID: VirtualSigstore keeps the hex text in ID (its map
// keys are what it verifies with in process), which a trusted_root.json would carry as the
// bytes of that text, naming another log.
func rawIDs(t testing.TB, logs map[string]*root.TransparencyLog) map[string]*root.TransparencyLog {
	t.Helper()
	out := map[string]*root.TransparencyLog{}
	for id, l := range logs {
		raw, err := hex.DecodeString(id)
		if err != nil {
			t.Fatal(err)
		}
		c := *l
		c.ID = raw
		out[id] = &c
	}
	return out
}

// Subject is one in-toto subject.
type Subject struct {
	Name   string
	SHA256 string
}

// Options shape a bundle.
type Options struct {
	// PredicateType defaults to SLSA provenance v1.
	PredicateType string
	Predicate     any
	// LogTime is the log's integrated time (default: now + 5 min, inside the certificate's
	// ten minutes of validity that start now).
	LogTime time.Time
	// NoInclusionProof leaves the entry's inclusion proof out.
	NoInclusionProof bool
	// Timestamp adds an RFC 3161 timestamp from the virtual TSA.
	Timestamp bool
	// MediaType overrides the bundle's media type.
	MediaType string
}

// SLSAProvenance is the SLSA provenance v1 predicate type.
const SLSAProvenance = "https://slsa.dev/provenance/v1"

// Statement returns an in-toto v1 statement.
func Statement(t testing.TB, predicateType string, predicate any, subjects ...Subject) []byte {
	t.Helper()
	type subj struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	}
	st := struct {
		Type          string `json:"_type"`
		Subject       []subj `json:"subject"`
		PredicateType string `json:"predicateType"`
		Predicate     any    `json:"predicate"`
	}{Type: "https://in-toto.io/Statement/v1", PredicateType: predicateType, Predicate: predicate}
	for _, s := range subjects {
		st.Subject = append(st.Subject, subj{Name: s.Name, Digest: map[string]string{"sha256": s.SHA256}})
	}
	if st.Predicate == nil {
		st.Predicate = map[string]any{}
	}
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Bundle signs a statement about subjects as identity (an email SAN) vouched for by issuer,
// logs it, and returns the v0.3 bundle JSON.
func (s *Sigstore) Bundle(t testing.TB, identity, issuer string, o Options, subjects ...Subject) []byte {
	t.Helper()
	if o.PredicateType == "" {
		o.PredicateType = SLSAProvenance
	}
	if o.LogTime.IsZero() {
		o.LogTime = time.Now().Add(5 * time.Minute)
	}
	stmt := Statement(t, o.PredicateType, o.Predicate, subjects...)
	ent, err := s.VS.AttestAtTime(identity, issuer, stmt, o.LogTime, !o.NoInclusionProof)
	if err != nil {
		t.Fatal(err)
	}
	return s.encode(t, ent, o)
}

// File is the subject for content named name.
func File(name string, content []byte) Subject {
	sum := sha256.Sum256(content)
	return Subject{Name: name, SHA256: hex.EncodeToString(sum[:])}
}

func (s *Sigstore) encode(t testing.TB, ent *ca.TestEntity, o Options) []byte {
	t.Helper()
	vc, err := ent.VerificationContent()
	if err != nil {
		t.Fatal(err)
	}
	cert := vc.(*bundle.Certificate).Certificate()
	sc, err := ent.SignatureContent()
	if err != nil {
		t.Fatal(err)
	}
	env := sc.(*bundle.Envelope).Envelope
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	pe := &protodsse.Envelope{Payload: payload, PayloadType: env.PayloadType}
	for _, sig := range env.Signatures {
		raw, err := base64.StdEncoding.DecodeString(sig.Sig)
		if err != nil {
			t.Fatal(err)
		}
		pe.Signatures = append(pe.Signatures, &protodsse.Signature{Sig: raw, Keyid: sig.KeyID})
	}
	entries, err := ent.TlogEntries()
	if err != nil {
		t.Fatal(err)
	}
	logID, err := s.VS.RekorLogID()
	if err != nil {
		t.Fatal(err)
	}
	var tles []*protorekor.TransparencyLogEntry
	for _, e := range entries {
		tle := e.TransparencyLogEntry()
		tle.KindVersion = &protorekor.KindVersion{Kind: "dsse", Version: "0.0.1"}
		set, err := s.VS.RekorSignPayload(tlog.RekorPayload{
			Body:           base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
			IntegratedTime: tle.IntegratedTime,
			LogIndex:       tle.LogIndex,
			LogID:          logID,
		})
		if err != nil {
			t.Fatal(err)
		}
		tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
		tles = append(tles, tle)
	}
	vm := &protobundle.VerificationMaterial{
		Content:     &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: cert.Raw}},
		TlogEntries: tles,
	}
	if o.Timestamp {
		ts, err := s.VS.TimestampResponse(pe.Signatures[0].Sig)
		if err != nil {
			t.Fatal(err)
		}
		vm.TimestampVerificationData = &protobundle.TimestampVerificationData{Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: ts}}}
	}
	mt := o.MediaType
	if mt == "" {
		mt = "application/vnd.dev.sigstore.bundle.v0.3+json"
	}
	b := &protobundle.Bundle{MediaType: mt, VerificationMaterial: vm, Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: pe}}
	raw, err := protojson.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
