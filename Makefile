# Cairn — build, run and test. Everything a target needs is installed by the target itself.
export GOTOOLCHAIN := local
GO ?= go
CAIRN_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/cairn_dev?sslmode=disable
DEV_DIR ?= .data/dev
LISTEN ?= 127.0.0.1:8080

.PHONY: all build run test npm vet fmt bench load clean

all: build

build:
	$(GO) build -o bin/cairnd ./cmd/cairnd
	$(GO) build -o bin/cairn ./cmd/cairn

# The server with working defaults: a dev repository (keys, root.json, admin.token in
# $(DEV_DIR)) on the local PostgreSQL; the database is created if missing.
run: build
	./bin/cairnd serve --dev --data-dir $(DEV_DIR) --database-url "$(CAIRN_DATABASE_URL)" --listen $(LISTEN)

# tuf-js for the end-to-end tests, from the committed lock file.
npm: test/tufjs/node_modules/.package-lock.json

test/tufjs/node_modules/.package-lock.json: test/tufjs/package-lock.json
	cd test/tufjs && npm ci --no-audit --no-fund
	touch $@

# Every test, against the local PostgreSQL (or $$DATABASE_URL, read by the test helper).
test: npm vet
	$(GO) test -count=1 -timeout 20m ./...

vet:
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
