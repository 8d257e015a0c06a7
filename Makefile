# The two entry points a user needs are `make demo` and `make test`
# (README). Both run scripts/setup.sh first, which is idempotent.
# rustup installs cargo under ~/.cargo/bin, which a non-login shell may lack.
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
PMDS := target/pmds

# make install: DESTDIR and PREFIX as usual. The plugin goes where the
# system's EAL loads plugins from by itself (RTE_EAL_PMD_PATH of the DPDK
# pkg-config finds, whatever PREFIX is), so apps need no -d.
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/dpdk-io-proxy
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
PMDDIR ?= $(shell bash scripts/pmd-path.sh)
DOCS := README.md docs/architecture.md docs/building.md docs/performance.md docs/protocol.md docs/threat-model.md

.PHONY: all setup build compile test demo bench lint clean install uninstall

all: build

setup:
	bash scripts/setup.sh

build: setup compile

# The build alone, without setup (debian/rules uses it).
compile:
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

install:
	@test -x target/release/dpdk-io-proxy && ls $(PMDS)/librte_sock_shm.so.* >/dev/null 2>&1 \
		|| { echo "not built: run 'make build' first" >&2; exit 1; }
	@test -n "$(PMDDIR)" || { echo "no plugin directory (scripts/pmd-path.sh); set PMDDIR" >&2; exit 1; }
	install -D -m 0755 target/release/dpdk-io-proxy $(DESTDIR)$(SBINDIR)/dpdk-io-proxy
	install -d $(DESTDIR)$(PMDDIR)
	install -m 0644 $(PMDS)/librte_sock_shm.so.* $(DESTDIR)$(PMDDIR)/
	install -D -m 0644 docs/dpdk-io-proxy.8 $(DESTDIR)$(MANDIR)/man8/dpdk-io-proxy.8
	install -d $(DESTDIR)$(DOCDIR)
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		packaging/dpdk-io-proxy.service.in > $(DESTDIR)$(UNITDIR)/dpdk-io-proxy.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/dpdk-io-proxy.service
	@# Configuration: never overwritten.
	test -e $(DESTDIR)$(SYSCONFDIR)/default/dpdk-io-proxy \
		|| install -D -m 0644 packaging/dpdk-io-proxy.default $(DESTDIR)$(SYSCONFDIR)/default/dpdk-io-proxy
	test -e $(DESTDIR)$(SYSCONFDIR)/dpdk-io-proxy/dpdk-io-proxy.cmds \
		|| install -D -m 0644 packaging/dpdk-io-proxy.cmds $(DESTDIR)$(SYSCONFDIR)/dpdk-io-proxy/dpdk-io-proxy.cmds

# Removes what install put there; configuration only if unchanged.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/dpdk-io-proxy $(DESTDIR)$(PMDDIR)/librte_sock_shm.so.* \
		$(DESTDIR)$(MANDIR)/man8/dpdk-io-proxy.8 $(DESTDIR)$(UNITDIR)/dpdk-io-proxy.service \
		$(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS)))
	-rmdir $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR) 2>/dev/null
	for f in default/dpdk-io-proxy:dpdk-io-proxy.default dpdk-io-proxy/dpdk-io-proxy.cmds:dpdk-io-proxy.cmds; do \
		installed=$(DESTDIR)$(SYSCONFDIR)/$${f%%:*}; \
		if cmp -s $$installed packaging/$${f##*:}; then rm -f $$installed; \
		elif [ -e $$installed ]; then echo "kept $$installed (changed)"; fi; \
	done
	-rmdir $(DESTDIR)$(SYSCONFDIR)/dpdk-io-proxy 2>/dev/null
