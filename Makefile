# Vigil: `make demo` and `make test` set up everything they need on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TERM_COLOR ?= never
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VIGIL := $(CARGO_TARGET_DIR)/debug/vigil

# Debian packages: to build (a C compiler for the TLS crypto crates) and the test peers.
BUILD_PACKAGES := build-essential pkg-config
TEST_PACKAGES := mosquitto openssl

.PHONY: demo test deps test-deps build lint unit e2e bench clean

# Installs the named Debian packages that are not installed yet (with sudo when not root).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps:
	@command -v cargo >/dev/null || { echo "Rust is missing: install it with rustup (Rust >= 1.94), then run make again."; exit 1; }
	$(call apt_install,$(BUILD_PACKAGES))

test-deps: deps
	$(call apt_install,$(TEST_PACKAGES))

build: deps
	cargo build -p pipeline-core --bin vigil

## The embedded default: Vigil's own MQTT endpoint, SQLite, simulated devices, a live summary.
demo: build
	$(VIGIL) demo

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## The whole suite: lint, unit tests, end-to-end tests against real peers. The last line sums it up.
test: test-deps lint
	cargo build -p pipeline-core --bin vigil
	cargo test --workspace 2>&1 | tee $(CARGO_TARGET_DIR)/test-output.txt
	@awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($$(i+1) ~ /^passed/) p += $$i; if ($$(i+1) ~ /^failed/) f += $$i } } \
	  END { printf "%d passed, %d failed\n", p, f }' $(CARGO_TARGET_DIR)/test-output.txt

## Benchmarks (not tests): results go to docs/benchmarks.md by hand, with the command.
bench: test-deps
	cargo build --release -p pipeline-core --bin vigil
	$(CARGO_TARGET_DIR)/release/vigil bench

clean:
	cargo clean
	rm -rf demo-data
