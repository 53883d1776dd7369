# Cairn — build, run and test. Everything a target needs is installed by the target itself.
export GOTOOLCHAIN := local
GO ?= go
CAIRN_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/cairn_dev?sslmode=disable
DEV_DIR ?= .data/dev
# cairnd reads CAIRN_LISTEN itself, but run passes --listen, which wins over it: so the
# default here is $CAIRN_LISTEN when set (make run LISTEN=… still overrides both).
LISTEN ?= $(or $(CAIRN_LISTEN),127.0.0.1:8080)

.PHONY: all build run test npm hsm nginx chromium keyring vet tidy-check fmt bench load clean oci-clients oci-conformance-dev web-assets screenshots bench-web

all: build

build:
	$(GO) build -o bin/cairnd ./cmd/cairnd
	$(GO) build -o bin/cairn ./cmd/cairn

# The server with working defaults: a dev repository (keys, root.json, admin.token in
# $(DEV_DIR)) on the local PostgreSQL; the database is created if missing.
run: build
	./bin/cairnd serve --dev --data-dir $(DEV_DIR) --database-url "$(CAIRN_DATABASE_URL)" --listen "$(LISTEN)"

# tuf-js for the end-to-end tests, and the web UI's build tools (esbuild, tuf-js for the
# browser, axe-core for the accessibility tests), from the committed lock files.
npm: test/tufjs/node_modules/.package-lock.json web/ui/node_modules/.package-lock.json

test/tufjs/node_modules/.package-lock.json: test/tufjs/package-lock.json
	@echo "make: installing tuf-js for the end-to-end tests (npm ci, test/tufjs; ~10 s once)"
	cd test/tufjs && npm ci --no-audit --no-fund
	touch $@

web/ui/node_modules/.package-lock.json: web/ui/package-lock.json
	@echo "make: installing the web UI's build tools (npm ci, web/ui; ~20 s once)"
	cd web/ui && npm ci --no-audit --no-fund
	touch $@

# The web UI's browser bundle, web/static/app.js, is committed (go build needs no Node);
# rebuild it after changing web/ui/src or the lock file. make test checks that it matches.
web-assets: web/ui/node_modules/.package-lock.json
	cd web/ui && node build.mjs

# SoftHSM2 and OpenSC's pkcs11-tool for the PKCS#11 (HSM) tests, from Debian's packages.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
hsm:
	@command -v softhsm2-util >/dev/null && command -v pkcs11-tool >/dev/null || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  echo "make: installing SoftHSM2 and OpenSC (Debian packages) for the HSM tests"; \
	  $(SUDO) apt-get install -y --no-install-recommends softhsm2 opensc >/dev/null || \
	  { $(SUDO) apt-get update >/dev/null && $(SUDO) apt-get install -y --no-install-recommends softhsm2 opensc >/dev/null; }; }

# nginx for the static tier's end-to-end test (e2e/static_test.go runs
# deploy/nginx/cairn-static.conf), from Debian's packages.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y --no-install-recommends nginx >/dev/null || \
	  { $(SUDO) apt-get update >/dev/null && $(SUDO) apt-get install -y --no-install-recommends nginx >/dev/null; }; }

# GNOME Keyring, a real Secret Service for the test of 'cairn login' storing its token in
# the OS keyring (cmd/cairn/cli/login_test.go runs it on a private D-Bus session bus).
keyring:
	@command -v gnome-keyring-daemon >/dev/null && command -v dbus-run-session >/dev/null || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  echo "make: installing GNOME Keyring (Debian package) for the OS keyring test of cairn login"; \
	  $(SUDO) apt-get install -y --no-install-recommends gnome-keyring dbus >/dev/null || \
	  { $(SUDO) apt-get update >/dev/null && $(SUDO) apt-get install -y --no-install-recommends gnome-keyring dbus >/dev/null; }; }

# Every test, against the local PostgreSQL (or $$DATABASE_URL, read by the test helper).
# crane, oras, notation and cosign (e2e/ociclients_test.go, e2e/image_test.go) are installed
# first (cosign takes 15-20 min to build cold, cached after).
# The transparency log tests run against a real Rekor v2 server (make rekor, ~1 min once);
# the Helm chart's test uses helm (make helm, ~2-2.5 min once). Each tool says so on one
# line when it is built (README.md, "What make test builds"). Tests that skip because a
# tool is missing are listed at the end (internal/testenv); with CI=true they fail instead.
SKIP_LOG := .cache/skipped-tests.txt
test: tidy-check npm hsm nginx chromium keyring vet rekor fulcio tsa cosign3 s3 helm kubeconform previous-cairnd registry
	test/ociclients/install.sh -d $(OCI_CLIENTS) crane oras notation cosign
	@mkdir -p $(dir $(SKIP_LOG)) && rm -f $(SKIP_LOG)
	@echo "make test: go test ./... (the first run also builds the OCI conformance suite)"
	@CAIRN_SKIP_LOG=$(CURDIR)/$(SKIP_LOG) CAIRN_PREVIOUS_CAIRND=$(CURDIR)/$(PREVIOUS_CAIRND) CAIRN_OCI_CLIENTS=$(OCI_CLIENTS) CAIRN_COSIGN=$(OCI_CLIENTS)/cosign CAIRN_TEST_REKOR=1 CAIRN_REKOR_BIN=$(CURDIR)/$(REKOR_BIN) CAIRN_FULCIO_BIN=$(CURDIR)/$(FULCIO_BIN) CAIRN_TSA_BIN=$(CURDIR)/$(TSA_BIN) CAIRN_COSIGN3_BIN=$(CURDIR)/$(COSIGN3_BIN) CAIRN_S3_BIN=$(CURDIR)/$(S3_BIN) CAIRN_HELM_BIN=$(CURDIR)/$(HELM_BIN) CAIRN_KUBECONFORM_BIN=$(CURDIR)/$(KUBECONFORM_BIN) CAIRN_REGISTRY_BIN=$(CURDIR)/$(REGISTRY_BIN) \
		$(GO) test -count=1 -timeout 45m ./...; status=$$?; \
	if [ -s $(SKIP_LOG) ]; then echo "make test: tests skipped for a missing tool (CI=true makes these fail):"; \
	  awk '{ i = index($$0, ": "); k = substr($$0, i + 2); n[k]++; if (!(k in ex)) ex[k] = substr($$0, 1, i - 1) } \
	    END { for (k in n) printf "  %d skipped (%s, ...): %s\n", n[k], substr(ex[k], 3), k }' $(SKIP_LOG); fi; \
	exit $$status

# go.mod and go.sum must be exactly what `go mod tidy` makes: a direct dependency marked
# indirect, a module no longer used or a missing go.sum line fails make test (and CI).
tidy-check:
	@echo "make test: checking that go.mod and go.sum are tidy (go mod tidy -diff; downloads the module graph on a cold machine)"
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run \`go mod tidy\` and commit the result (the diff is above)" >&2; exit 1; }

# The real OCI clients of e2e/ociclients_test.go at pinned versions, cached between runs in
# the directory `make oci-clients` fills. test-oci-clients runs all of them, cosign included
# (~10-15 min to build cold, cached after); test-cosign runs cosign alone.
OCI_CLIENTS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/cairn/ociclients
.PHONY: test-oci-clients test-cosign
test-oci-clients:
	test/ociclients/install.sh -d $(OCI_CLIENTS) crane oras notation cosign
	CAIRN_OCI_CLIENTS=$(OCI_CLIENTS) CAIRN_COSIGN=$(OCI_CLIENTS)/cosign $(GO) test -count=1 -timeout 20m -v -run '^TestOCIClients' ./e2e/

test-cosign:
	test/ociclients/install.sh -d $(OCI_CLIENTS) crane cosign
	CAIRN_OCI_CLIENTS=$(OCI_CLIENTS) CAIRN_COSIGN=$(OCI_CLIENTS)/cosign $(GO) test -count=1 -timeout 20m -v -run '^TestOCIClientsCosign$$' ./e2e/

# cairnd of the previous release, for the rolling-upgrade test (e2e/upgrade_test.go,
# docs/operations.md "Upgrades"). There is no release tag yet, so the previous release is
# a documented commit: 9cf7829, the last commit before migration 00012_attestations.sql was
# added (migrations 00001-00011; `git log --oneline -- migrations/`). When a release is
# tagged, set PREVIOUS_RELEASE to that tag's commit. Built from `git archive` of that commit
# with the same Go toolchain into .cache/previous/<commit> (~1 min once, cached after).
.PHONY: previous-cairnd test-upgrade
PREVIOUS_RELEASE := 9cf7829f18dae6c1a610c77fd3e6f3c251b30a30
PREVIOUS_CAIRND := .cache/previous/$(PREVIOUS_RELEASE)/cairnd
previous-cairnd: $(PREVIOUS_CAIRND)
$(PREVIOUS_CAIRND):
	@echo "make: building cairnd of the previous release ($(PREVIOUS_RELEASE)) into $(@D) for the upgrade test (~1 min once, cached after)"
	@git cat-file -e $(PREVIOUS_RELEASE)^{commit} 2>/dev/null || { echo "make: commit $(PREVIOUS_RELEASE) (the previous release) is not in this clone: fetch it (git fetch --unshallow)" >&2; exit 1; }
	rm -rf $(@D)/src && mkdir -p $(@D)/src
	git archive $(PREVIOUS_RELEASE) | tar -x -C $(@D)/src
	cd $(@D)/src && GOFLAGS=-buildvcs=false $(GO) build -o ../cairnd.tmp ./cmd/cairnd
	mv $(@D)/cairnd.tmp $@ && rm -rf $(@D)/src

test-upgrade: previous-cairnd
	CAIRN_PREVIOUS_CAIRND=$(CURDIR)/$(PREVIOUS_CAIRND) $(GO) test -count=1 -timeout 10m -v -run '^TestRollingUpgrade' ./e2e/

# The transparency log tests against a real Rekor v2 server (rekor-tiles v2.3.0, POSIX
# backend, on loopback), built once into .cache/sigstore/bin (~1 min cold, with downloads).
# `make test` runs them too; test-rekor runs only them. Without CAIRN_TEST_REKOR=1 they skip.
.PHONY: rekor test-rekor
REKOR_BIN := .cache/sigstore/bin/posix
rekor: $(REKOR_BIN)
$(REKOR_BIN):
	@echo "make: building rekor-server (rekor-tiles v2.3.0) into $(@D) for the transparency log tests (~1 min once, cached after)"
	mkdir -p $(@D)
	GOBIN=$(CURDIR)/$(@D) $(GO) install github.com/sigstore/rekor-tiles/v2/cmd/rekor-server/posix@v2.3.0

test-rekor: rekor
	CAIRN_TEST_REKOR=1 CAIRN_REKOR_BIN=$(CURDIR)/$(REKOR_BIN) $(GO) test -count=1 -timeout 15m -run 'Rekor|TransparencyLog|Tlog' ./tlog ./store ./server ./e2e

# Fulcio v1.8.8 and the timestamp authority v2.1.3 for the keyless signing test of
# 'cairn attest' (e2e/attest_keyless_test.go: Fulcio, our own OIDC issuer, Rekor v2 and the
# TSA on loopback), built once into .cache/sigstore/bin. Fulcio: ~2 min cold with its
# downloads; the TSA: ~1.5 min. test-keyless runs only that test.
.PHONY: fulcio tsa test-keyless
FULCIO_BIN := .cache/sigstore/bin/fulcio
TSA_BIN := .cache/sigstore/bin/timestamp-server
fulcio: $(FULCIO_BIN)
$(FULCIO_BIN):
	@echo "make: building fulcio v1.8.8 into $(@D) for the keyless signing test (~2 min once, cached after)"
	mkdir -p $(@D)
	GOBIN=$(CURDIR)/$(@D) GOFLAGS=-buildvcs=false $(GO) install github.com/sigstore/fulcio@v1.8.8
tsa: $(TSA_BIN)
$(TSA_BIN):
	@echo "make: building timestamp-server (timestamp-authority v2.1.3) into $(@D) for the keyless signing test (~1.5 min once, cached after)"
	mkdir -p $(@D)
	GOBIN=$(CURDIR)/$(@D) GOFLAGS=-buildvcs=false $(GO) install github.com/sigstore/timestamp-authority/v2/cmd/timestamp-server@v2.1.3

# cosign v3.1.3 for the test that Cairn accepts what cosign signs keylessly against these
# services (e2e/attest_oci_test.go): the OCI clients' cosign v2.6.5 cannot log a DSSE
# envelope in Rekor v2.3.0 (internal/sigstoretest CosignVersion), built into the same
# directory (~10 min cold, cached after).
.PHONY: cosign3
COSIGN3_BIN := .cache/sigstore/bin/cosign
cosign3: $(COSIGN3_BIN)
$(COSIGN3_BIN):
	@echo "make: building cosign v3.1.3 into $(@D) for the cosign interoperability test of attestations (~10 min once, cached after)"
	mkdir -p $(@D)
	GOBIN=$(CURDIR)/$(@D) GOFLAGS=-buildvcs=false $(GO) install github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3

test-keyless: rekor fulcio tsa
	CAIRN_TEST_REKOR=1 CAIRN_REKOR_BIN=$(CURDIR)/$(REKOR_BIN) CAIRN_FULCIO_BIN=$(CURDIR)/$(FULCIO_BIN) CAIRN_TSA_BIN=$(CURDIR)/$(TSA_BIN) $(GO) test -count=1 -timeout 15m -v -run 'TestAttestKeylessWithRealSigstore' ./e2e

# versitygw (Apache-2.0), a real S3-compatible server for the S3 blob store tests, built
# once into .cache/s3/bin (~2 min cold).
.PHONY: s3
S3_BIN := .cache/s3/bin/versitygw
s3: $(S3_BIN)
$(S3_BIN):
	@echo "make: building versitygw v1.8.0 into $(@D) for the S3 blob store tests (~2 min once, cached after)"
	mkdir -p $(@D)
	GOBIN=$(CURDIR)/$(@D) $(GO) install github.com/versity/versitygw/cmd/versitygw@v1.8.0

# helm v3.22.0 for the Helm chart's test (deploy/helm), built once into .cache/helm/bin
# (~2-2.5 min cold on 2 cores, with downloads; the main go.mod is not touched). `make test`
# runs the chart test too; test-helm runs only it (helm lint/template on deploy/helm/cairn,
# the rendered objects checked, and the boot test: the migrate Job, bootstrap Job,
# Deployment, probes and gc CronJob run as cairnd processes against PostgreSQL, one value
# set on versitygw's S3). Without CAIRN_HELM_BIN the chart tests skip.
.PHONY: helm test-helm
HELM_BIN := .cache/helm/bin/helm
helm: $(HELM_BIN)
$(HELM_BIN):
	@echo "make: building helm v3.22.0 into $(@D) for the Helm chart test (~2-2.5 min once, cached after)"
	mkdir -p $(@D)
	GOBIN=$(CURDIR)/$(@D) $(GO) install helm.sh/helm/v3/cmd/helm@v3.22.0

test-helm: helm s3 kubeconform
	CAIRN_HELM_BIN=$(CURDIR)/$(HELM_BIN) CAIRN_S3_BIN=$(CURDIR)/$(S3_BIN) CAIRN_KUBECONFORM_BIN=$(CURDIR)/$(KUBECONFORM_BIN) $(GO) test -count=1 -timeout 10m -v ./deploy/helm/

# The CNCF distribution registry v3.1.2 (Apache-2.0), which has no referrers API: `cairn get
# oci://` is tested against it through the referrers tag schema (e2e/attest_getoci_test.go).
# Built once into .cache/registry/bin (~1–2 min cold).
.PHONY: registry
REGISTRY_BIN := .cache/registry/bin/registry
registry: $(REGISTRY_BIN)
$(REGISTRY_BIN):
	@echo "make: building the distribution registry v3.1.2 into $(@D) for the oci:// test (~1-2 min once, cached after)"
	mkdir -p $(@D)
	GOBIN=$(CURDIR)/$(@D) $(GO) install github.com/distribution/distribution/v3/cmd/registry@v3.1.2

# kubeconform v0.8.0 (Apache-2.0) validates every manifest the chart renders against the
# Kubernetes JSON schemas vendored in deploy/helm/schemas (strict: an unknown field fails),
# built once into .cache/kubeconform/bin (~20 s cold). `make test` and test-helm run it.
.PHONY: kubeconform helm-schemas
KUBECONFORM_BIN := .cache/kubeconform/bin/kubeconform
kubeconform: $(KUBECONFORM_BIN)
$(KUBECONFORM_BIN):
	@echo "make: building kubeconform v0.8.0 into $(@D) for the Helm chart's schema check (~20 s once, cached after)"
	mkdir -p $(@D)
	GOBIN=$(CURDIR)/$(@D) $(GO) install github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0

# Regenerates deploy/helm/schemas (committed) from the Kubernetes API's OpenAPI document
# and the Prometheus operator's CRDs, both fetched through the Go module proxy at these
# versions: one schema per kind the chart renders. A kind the chart starts to render needs
# adding here (the chart test fails until it has a schema).
K8S_SCHEMA_VERSION := v1.35.4
PROMETHEUS_OPERATOR_VERSION := v0.85.0
HELM_KINDS := v1/ConfigMap v1/Service v1/ServiceAccount v1/PersistentVolumeClaim apps/v1/Deployment \
	batch/v1/Job batch/v1/CronJob policy/v1/PodDisruptionBudget networking.k8s.io/v1/Ingress \
	monitoring.coreos.com/v1/ServiceMonitor monitoring.coreos.com/v1/PrometheusRule
helm-schemas:
	rm -rf deploy/helm/schemas/*-standalone-strict
	$(GO) run ./internal/tools/k8sschema -kubernetes $(K8S_SCHEMA_VERSION) -prometheus-operator $(PROMETHEUS_OPERATOR_VERSION) -out deploy/helm/schemas $(HELM_KINDS)

# Debian's Chromium for the web UI's browser tests (web/*_test.go drive it with go-rod);
# nothing downloads a browser build.
chromium:
	@command -v chromium >/dev/null || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  echo "installing chromium (Debian package) for the web UI's browser tests"; \
	  $(SUDO) apt-get install -y --no-install-recommends chromium >/dev/null || \
	  { $(SUDO) apt-get update >/dev/null && $(SUDO) apt-get install -y --no-install-recommends chromium >/dev/null; }; }

# The README's screenshots of the web UI (docs/screenshots), taken by the browser tests.
screenshots: npm chromium
	mkdir -p docs/screenshots
	CAIRN_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^TestScreenshots$$' -v ./web/

# The web UI's server-side rendering benchmark (BENCHMARKS.md, "Web UI"): home page at
# 100k projects, project page with 1,000 releases.
bench-web:
	$(GO) test -run '^$$' -bench 'Pages' -benchtime 400x -timeout 30m ./web/

vet:
	@echo "make: go vet ./... (on a cold machine this first downloads and compiles every dependency: most of the first run's 'go: downloading' lines)"
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./tufrepo ./store

# The performance benchmark (BENCHMARKS.md): private PostgreSQL, cairnd, nginx, wrk; ~30 min.
load:
	bash bench/run.sh

clean:
	rm -rf bin .data

# cairnd's container image (README "Container image"): static cairnd for linux/amd64 and
# linux/arm64 on a minimal base made here, an OCI image layout at bin/image with SPDX SBOMs;
# no Docker engine, no base image pulled. The CA bundle comes from Debian's ca-certificates.
.PHONY: image
image:
	@test -s /etc/ssl/certs/ca-certificates.crt || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  echo "make: installing Debian's ca-certificates for the image's CA bundle"; \
	  $(SUDO) apt-get install -y --no-install-recommends ca-certificates >/dev/null || \
	  { $(SUDO) apt-get update >/dev/null && $(SUDO) apt-get install -y --no-install-recommends ca-certificates >/dev/null; }; }
	$(GO) run ./internal/tools/mkimage build -o bin/image

# Every real OCI client (crane, oras, notation, cosign ~15 min cold) into the shared cache.
oci-clients:
	test/ociclients/install.sh -d $(OCI_CLIENTS) crane oras notation cosign

# The OCI conformance suite's development profile (make test runs the 1.1 profile).
oci-conformance-dev:
	CAIRN_OCI_VERSION=dev $(GO) test -count=1 -run TestConformance -v ./oci/
