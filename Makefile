# The two entry points a user needs are `make demo` and `make test`
# (README). Both run scripts/setup.sh first, which is idempotent.
# rustup installs cargo under ~/.cargo/bin, which a non-login shell may lack.
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
PMDS := target/pmds

.PHONY: all setup build test demo bench lint clean

all: build

setup:
	bash scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace
	rm -rf $(PMDS) && mkdir -p $(PMDS)
	install -m 0755 target/release/librte_sock_shm.so $(PMDS)/$$(bash scripts/soname.sh target/release/librte_sock_shm.so)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

test: build lint
	bash scripts/test.sh

demo: build
	bash scripts/demo.sh

# Side-by-side benchmark (not part of `make test`): see docs/performance.md.
bench: build
	/usr/bin/python3 bench/run.py $(BENCH_ARGS)

clean:
	$(CARGO) clean
