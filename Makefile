# Thin wrappers around scripts/ and meson. `make run` and `make test` work on a fresh Debian 12.
BUILD      ?= build
BUILD_ASAN ?= build-asan
CONFIG     ?= etc/wshub.yaml
MESON_OPTS ?=

.PHONY: all deps build run test test-plain test-asan bench clean install check-format format

all: build

deps:
	bash scripts/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: build
	WSHUB_PLUGIN_DIR=$(CURDIR)/$(BUILD)/plugins $(BUILD)/core/wshubd -c $(CONFIG)

# The whole suite, then the whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
test: deps
	bash scripts/test.sh

test-plain: build
	meson test -C $(BUILD) --print-errorlogs

test-asan: deps
	bash scripts/test.sh asan

bench: build
	bash scripts/bench.sh

install: build
	meson install -C $(BUILD)

check-format:
	bash scripts/format.sh --check

format:
	bash scripts/format.sh

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
