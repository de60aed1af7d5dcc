# Vigil: `make demo` and `make test` set up everything they need on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TERM_COLOR ?= never
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VIGIL := $(CARGO_TARGET_DIR)/debug/vigil

# Debian packages: to build (a C compiler for the TLS crypto crates; WebKitGTK and friends for the
# Tauri console) and to test (the peers, a virtual display and WebKit's WebDriver for the console).
BUILD_PACKAGES := build-essential pkg-config libssl-dev libwebkit2gtk-4.1-dev libayatana-appindicator3-dev \
  librsvg2-dev libxdo-dev
# libgl1-mesa-dri is only a recommendation of WebKitGTK, and the console's window under Xvfb was
# tested with it: install it by name, since packages go in without recommendations.
TEST_PACKAGES := mosquitto mosquitto-clients openssl xvfb webkit2gtk-driver libgl1-mesa-dri faketime
CONSOLE := $(CARGO_TARGET_DIR)/debug/vigil-console
UI_DEPS := ui/node_modules/.package-lock.json
UI_DIST := ui/dist/index.html
# Where `cargo install` puts it; the console's end-to-end test reads TAURI_DRIVER.
export TAURI_DRIVER := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin/tauri-driver

PEERS := tests/peers
PEER_NODE := $(PEERS)/fhir-server/node_modules/.package-lock.json
PEER_VENV := $(PEERS)/.venv/.installed

.PHONY: demo test deps test-deps peers build ui console lint bindings bench clean fuzz soak

# Installs the named Debian packages that are not installed yet (with sudo when not root).
define apt_install
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps:
	@command -v cargo >/dev/null || { echo "Rust is missing: install it with rustup (Rust >= 1.94), then run make again."; exit 1; }
	$(call apt_install,$(BUILD_PACKAGES))
	@command -v node >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nodejs npm; }
	@node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)' \
	  || { echo "the console UI (Vite 8) and the FHIR test server need Node.js 20.19 or newer (found $$(node --version))"; exit 1; }

test-deps: deps $(TAURI_DRIVER)
	$(call apt_install,$(TEST_PACKAGES))
	@python3 -c 'import ensurepip' 2>/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; }

## tauri-driver: the WebDriver bridge to WebKitWebDriver that the console's end-to-end test drives.
$(TAURI_DRIVER):
	cargo install tauri-driver --version '^2' --locked

## The console UI: TypeScript + Preact, built by Vite into ui/dist, which the Tauri build embeds.
$(UI_DEPS): ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund --loglevel=error

$(UI_DIST): $(UI_DEPS) $(shell find ui/src ui/index.html ui/vite.config.ts ui/tsconfig.json -type f 2>/dev/null)
	cd ui && npm run build

ui: deps $(UI_DIST)

## Test peers: the FHIR R4 server (medplum, from npm) and the HL7 v2 MLLP receiver (hl7/hl7apy, from PyPI).
peers: test-deps $(PEER_NODE) $(PEER_VENV)

$(PEER_NODE): $(PEERS)/fhir-server/package-lock.json
	cd $(PEERS)/fhir-server && npm ci --no-audit --no-fund --loglevel=error

$(PEER_VENV): $(PEERS)/mllp-peer/requirements.txt
	python3 -m venv $(PEERS)/.venv
	$(PEERS)/.venv/bin/pip install -q --disable-pip-version-check -r $<
	touch $@

build: deps ui
	cargo build -p pipeline-core --bin vigil

console: build
	cargo build -p vigil-console

## The console on the embedded default: Vigil's own MQTT endpoint, SQLite, the sandbox EHR and a
## simulated ward (one device unpaired, desaturations now and then); its data in ~/.local/share.
## Without a display, the terminal demo runs instead.
demo: console
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then $(CONSOLE); \
	else echo "no display (DISPLAY is not set): running the terminal demo instead"; $(VIGIL) demo; fi

lint: ui
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## The whole suite: lint, unit tests, end-to-end tests against real peers. The last line sums it up.
test: peers lint bindings
	python3 tests/scripts/module_graph.py
	cd $(PEERS)/fhir-server && node --test selftest.mjs > /dev/null
	$(PEERS)/.venv/bin/python -m pytest -q $(PEERS)/mllp-peer
	cd ui && npm run check && npm test
	cargo build -p pipeline-core --bin vigil
	cargo build -p vigil-console
	cargo check --quiet --manifest-path fuzz/Cargo.toml
	cargo test --workspace 2>&1 | tee $(CARGO_TARGET_DIR)/test-output.txt
	@awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($$(i+1) ~ /^passed/) p += $$i; if ($$(i+1) ~ /^failed/) f += $$i } } \
	  END { printf "%d passed, %d failed\n", p, f }' $(CARGO_TARGET_DIR)/test-output.txt

## The console's IPC types, generated from the Rust types by ts-rs (`cargo test` writes them): fails
## when the committed ones differ, so the UI and its mock can only use what Rust sends.
GENERATED := ui/src/backend/generated
bindings: deps
	rm -rf $(GENERATED)
	cargo test -p pipeline-core --lib export_bindings -- --quiet
	@changed=$$(git status --porcelain -- $(GENERATED)); \
	if [ -n "$$changed" ]; then echo "$(GENERATED) differs from the Rust types; commit the regenerated files:"; echo "$$changed"; exit 1; fi

## Benchmarks (not tests): results go to docs/benchmarks.md by hand, with the command.
bench: test-deps
	cargo build --release -p pipeline-core --bin vigil
	$(CARGO_TARGET_DIR)/release/vigil bench

clean:
	cargo clean
	rm -rf demo-data ui/dist

## Fuzzing: each target in fuzz/ (pipeline_core::fuzz) for FUZZ_SECS seconds with cargo-fuzz on the
## nightly toolchain, seeded from fixtures/fuzz/<target>/ (read only; new inputs go to the target
## dir). A crash is left in fuzz/artifacts/<target>/; fix it and add the input to fixtures/fuzz.
FUZZ_SECS ?= 120
FUZZ_TARGETS := mqtt_endpoint profile_payload hl7_ack mllp_frame pcd01_message token_response config
fuzz: deps
	@rustup toolchain list | grep -q nightly || { echo "make fuzz needs the nightly toolchain (rustup toolchain install nightly)"; exit 1; }
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(CARGO_TARGET_DIR)/fuzz-corpus/$$t; \
	  echo "fuzzing $$t for $(FUZZ_SECS) s"; \
	  (cargo +nightly fuzz run $$t $(CARGO_TARGET_DIR)/fuzz-corpus/$$t fixtures/fuzz/$$t -- \
	    -max_total_time=$(FUZZ_SECS) -max_len=65536 -print_final_stats=1 2>&1 | tail -12) || exit 1; \
	done

## The soak: SOAK_SECS (default 3600) of 50 devices through Mosquitto to the FHIR test server, with
## an EHR outage, a broker restart or a store stall every few minutes. Not part of `make test`.
SOAK_SECS ?= 3600
soak: peers
	cargo build -p pipeline-core --bin vigil
	SOAK_SECS=$(SOAK_SECS) cargo test -p vigil-tests --test soak -- --ignored --nocapture 2>&1 | grep -E "^soak:|test result|panicked|Error" 
