# deye-mitm - plain Makefile.  CFLAGS/LDFLAGS are the user's; our own flags
# live in WARN, DEPS_* and SAN, which are always appended.
#
#   make                      build ./deye-mitm
#   make check                build and run every test
#   make SANITIZE=address,undefined check
#   make SANITIZE=thread check
#   make fuzz FUZZ_TIME=900   libFuzzer (clang) on a copy of each corpus
#                             (FUZZ_TARGET=envoy: one harness)
#   make bench                relay benchmark against socat, decoders, Envoy, HEC
#   make soak SOAK_SECS=300   frames through the relay under random faults
#   make install PREFIX=/usr/local DESTDIR=
#   make fresh-check          the README's commands in fresh Debian 12 and 13
#                             roots (root, debootstrap, minutes)
#
# Warnings: a plain make prints them and goes on (a newer library may
# deprecate something we call; that must not stop a user's build), while
# make check fails on any warning the build printed (each compiler run's
# diagnostics are kept next to its output, NAME.warn).  WERROR=-Werror
# stops at the first one.

VERSION    = 0.1.0
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
DOCDIR    ?= $(PREFIX)/share/doc/deye-mitm
INSTALL   ?= install
PKG_CONFIG ?= pkg-config

CFLAGS  ?= -O2 -g
WERROR  ?=
WARN     = -std=c11 -Wall -Wextra $(WERROR) -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wvla \
           -Wcast-qual -Wwrite-strings -Wundef -Wnull-dereference
DEFS     = -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64 -DDEYE_VERSION='"$(VERSION)"'
DEPS     = libcurl jansson zlib expat libmosquitto libmicrohttpd
DEPS_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(DEPS))
DEPS_LIBS   := $(shell $(PKG_CONFIG) --libs $(DEPS)) -lresolv -pthread -lm
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

ifneq ($(SANITIZE),)
SAN      = -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -DDEYE_SANITIZE
B        = build/san-$(subst $(comma),-,$(SANITIZE))
BIN      = $(B)/deye-mitm
else
SAN      =
B        = build/default
BIN      = deye-mitm
endif
comma := ,

ALL_CFLAGS  = -Isrc $(WARN) $(DEFS) $(DEPS_CFLAGS) $(SAN) $(CFLAGS) -MMD -MP
ALL_LDFLAGS = $(SAN) $(LDFLAGS)

SRC   = $(wildcard src/*.c src/*/*.c)
OBJ   = $(SRC:src/%.c=$(B)/%.o)
LIB_OBJ = $(filter-out $(B)/main.o,$(OBJ))
UNIT_SRC = $(wildcard tests/unit/*.c)
UNIT_OBJ = $(UNIT_SRC:tests/unit/%.c=$(B)/unit/%.o)
# The unit tests link tests/unit/stub_clock.c in place of clock.o: clocks a
# test can stop and move (see there), at no cost to the daemon.
UNIT_LIB_OBJ = $(filter-out $(B)/clock.o,$(LIB_OBJ))
# slowdisk.c is an LD_PRELOAD shim (the slow-disk tests), not a program.
TOOL_SRC = $(filter-out tests/tools/slowdisk.c,$(wildcard tests/tools/*.c))
TOOLS    = $(TOOL_SRC:tests/tools/%.c=$(B)/tools/%) $(B)/tools/slowdisk.so

# The fuzz harnesses, each replayed over its corpus and regressions by
# `make check` (built like the unit tests), and built with clang and
# libFuzzer by `make fuzz` in a tree of its own.
FUZZ_HARNESSES = solarman envoy
FUZZ_TARGET ?= $(FUZZ_HARNESSES)
REPLAYS     = $(FUZZ_HARNESSES:%=$(B)/fuzz/replay-%)
FUZZ_CC     = clang
FUZZ_B      = build/fuzz
FUZZ_TIME  ?= 60
FUZZ_OPT   ?= -O1 -g
FUZZ_ARGS  ?=
FUZZ_SAN    = -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS = -Isrc $(WARN) $(DEFS) $(DEPS_CFLAGS) $(FUZZ_SAN) $(FUZZ_OPT) -MMD -MP
# What each harness links besides itself.
FUZZ_SRC_solarman = proto/solarman proto/solarman_event event
FUZZ_SRC_envoy    = proto/http proto/envoy event
# -max_len: room for two Solarman frames of the largest size; for the Envoy,
# a report POST and its answer.
FUZZ_LEN_solarman = 8193
FUZZ_LEN_envoy    = 65536

.PHONY: all check warnings unit blackbox fuzz-replay fuzz bench soak \
        fresh-check install uninstall clean

all: $(BIN)

$(BIN): $(OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $(OBJ) $(DEPS_LIBS)

# Appended to a compiler run: its diagnostics go to $@.warn and are shown.
KEEPWARN = 2>$@.warn; rc=$$?; cat $@.warn >&2; exit $$rc

$(B)/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $< $(KEEPWARN)

$(B)/unit/%.o: tests/unit/%.c | $(B)/unit
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -c -o $@ $< $(KEEPWARN)

$(B)/unit-tests: $(UNIT_OBJ) $(UNIT_LIB_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEPS_LIBS)

$(B)/tools/%: tests/tools/%.c | $(B)/tools
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< -pthread $(KEEPWARN)

# No sanitizer: it is preloaded into programs that may not have its runtime.
# No _FILE_OFFSET_BITS: it defines pwrite and pwrite64 both.
$(B)/tools/slowdisk.so: tests/tools/slowdisk.c | $(B)/tools
	$(CC) $(WARN) -D_GNU_SOURCE $(CFLAGS) -shared -fPIC -o $@ $< -ldl $(KEEPWARN)

$(B)/fuzz/%.o: tests/fuzz/%.c | $(B)/fuzz
	$(CC) $(ALL_CFLAGS) -c -o $@ $< $(KEEPWARN)

$(B)/fuzz/replay-%: $(B)/fuzz/replay.o $(B)/fuzz/fuzz_%.o $(LIB_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(DEPS_LIBS)

$(FUZZ_B)/%.o: src/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_B)/fuzz_%.o: tests/fuzz/fuzz_%.c | $(FUZZ_B)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_B)/fuzz-solarman: $(FUZZ_SRC_solarman:%=$(FUZZ_B)/%.o)
$(FUZZ_B)/fuzz-envoy: $(FUZZ_SRC_envoy:%=$(FUZZ_B)/%.o)
$(FUZZ_B)/fuzz-%: $(FUZZ_B)/fuzz_%.o
	$(FUZZ_CC) $(FUZZ_SAN) -o $@ $^ $(DEPS_LIBS)

# Reached only through the pattern rules above, these would be removed as
# intermediate files, and rebuilt by every make check and make fuzz.
.SECONDARY: $(B)/fuzz/replay.o $(FUZZ_HARNESSES:%=$(B)/fuzz/fuzz_%.o) \
            $(FUZZ_HARNESSES:%=$(FUZZ_B)/fuzz_%.o)

# The decoder benchmark links the daemon's objects, like the unit tests.
$(B)/bench-decoder: tests/bench/bench_decoder.c $(LIB_OBJ) | $(B)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB_OBJ) $(DEPS_LIBS)

$(B) $(B)/unit $(B)/tools $(B)/fuzz $(FUZZ_B):
	mkdir -p $@

check: warnings unit fuzz-replay blackbox

# What every compiler run of this build printed: make check fails on it.
WARNFILES = $(OBJ:=.warn) $(UNIT_OBJ:=.warn) $(TOOLS:=.warn) \
            $(B)/fuzz/replay.o.warn $(FUZZ_HARNESSES:%=$(B)/fuzz/fuzz_%.o.warn)
warnings: $(BIN) $(B)/unit-tests $(TOOLS) $(REPLAYS)
	@w=$$(cat $(WARNFILES) 2>/dev/null); if [ -n "$$w" ]; then \
	    printf '%s\n' "$$w"; \
	    echo "make check: the build printed warnings (above): fix them"; \
	    exit 1; fi

unit: $(B)/unit-tests
	cd tests && ../$(B)/unit-tests

# UBSan only prints unless told to stop: a report must fail the replay.
fuzz-replay: $(REPLAYS)
	for h in $(FUZZ_HARNESSES); do \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    $(B)/fuzz/replay-$$h tests/fuzz/corpus/$$h tests/fuzz/regress/$$h \
	    || exit 1; \
	done

# Each harness in FUZZ_TARGET for FUZZ_TIME seconds.  New corpus entries go
# to build/fuzz/corpus-<harness>, crashes to build/fuzz/artifacts; the
# repository's corpus is only read.
fuzz: $(FUZZ_TARGET:%=fuzz-run-%)

fuzz-run-%: $(FUZZ_B)/fuzz-%
	mkdir -p $(FUZZ_B)/corpus-$* $(FUZZ_B)/artifacts
	find tests/fuzz/corpus/$* tests/fuzz/regress/$* -type f ! -name '.*' \
	    -exec cp {} $(FUZZ_B)/corpus-$*/ \;
	$< -max_total_time=$(FUZZ_TIME) -max_len=$(FUZZ_LEN_$*) \
	    -dict=tests/fuzz/$*.dict -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_B)/artifacts/$*- $(FUZZ_ARGS) \
	    $(FUZZ_B)/corpus-$*

blackbox: $(BIN) $(TOOLS)
	DEYE_MITM=$(abspath $(BIN)) DEYE_TOOLS=$(abspath $(B)/tools) \
	DEYE_SANITIZE=$(SANITIZE) python3 tests/blackbox/run.py

bench: $(BIN) $(TOOLS) $(B)/bench-decoder
	DEYE_MITM=$(abspath $(BIN)) DEYE_TOOLS=$(abspath $(B)/tools) \
	DEYE_BENCH_DECODER=$(abspath $(B)/bench-decoder) \
	python3 tests/bench/bench.py

# Root and minutes, not part of check: see tests/fresh/fresh-check.
fresh-check:
	tests/fresh/fresh-check $(FRESH_SUITES)

# Minutes, not part of check: see tests/soak/soak.py (SOAK_SECS, SOAK_SEED).
soak: $(BIN)
	DEYE_MITM=$(abspath $(BIN)) DEYE_SANITIZE=$(SANITIZE) \
	python3 tests/soak/soak.py

install: $(BIN)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(DOCDIR)
	$(INSTALL) -m 755 $(BIN) $(DESTDIR)$(BINDIR)/deye-mitm
	$(INSTALL) -m 644 contrib/deye-mitm.8 $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 644 contrib/deye-mitm.conf.5 $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 644 deye-mitm.conf.example $(DESTDIR)$(DOCDIR)/
	sed 's|^ExecStart=/usr/local/bin/deye-mitm |ExecStart=$(BINDIR)/deye-mitm |' \
	    contrib/deye-mitm.service >$(DESTDIR)$(DOCDIR)/deye-mitm.service
	chmod 644 $(DESTDIR)$(DOCDIR)/deye-mitm.service
	$(INSTALL) -m 644 contrib/dnsmasq-deye-mitm.conf \
	    contrib/deye-mitm.logrotate \
	    contrib/logger-setup.md contrib/envoy-setup.md \
	    contrib/stunnel-envoy-server.conf contrib/stunnel-envoy-client.conf \
	    $(DESTDIR)$(DOCDIR)/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/deye-mitm $(DESTDIR)$(MANDIR)/man8/deye-mitm.8 \
	    $(DESTDIR)$(MANDIR)/man5/deye-mitm.conf.5
	rm -rf $(DESTDIR)$(DOCDIR)

clean:
	rm -rf build deye-mitm

-include $(OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(wildcard $(B)/fuzz/*.d) \
    $(wildcard $(FUZZ_B)/*.d) $(B)/bench-decoder.d
