# deye-mitm - plain Makefile.  CFLAGS/LDFLAGS are the user's; our own flags
# live in WARN, DEPS_* and SAN, which are always appended.
#
#   make                      build ./deye-mitm
#   make check                build and run every test
#   make SANITIZE=address,undefined check
#   make SANITIZE=thread check
#   make bench                relay benchmark against socat, decoder, HEC
#   make install PREFIX=/usr/local DESTDIR=

VERSION    = 0.1.0
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
DOCDIR    ?= $(PREFIX)/share/doc/deye-mitm
INSTALL   ?= install
PKG_CONFIG ?= pkg-config

CFLAGS  ?= -O2 -g
WERROR  ?= -Werror
WARN     = -std=c11 -Wall -Wextra $(WERROR) -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wvla \
           -Wcast-qual -Wwrite-strings -Wundef -Wnull-dereference
DEFS     = -D_GNU_SOURCE -DDEYE_VERSION='"$(VERSION)"'
DEPS     = libcurl jansson zlib
DEPS_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(DEPS))
DEPS_LIBS   := $(shell $(PKG_CONFIG) --libs $(DEPS)) -pthread -lm
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

ALL_CFLAGS  = $(WARN) $(DEFS) $(DEPS_CFLAGS) $(SAN) $(CFLAGS) -MMD -MP
ALL_LDFLAGS = $(SAN) $(LDFLAGS)

SRC   = $(wildcard src/*.c)
OBJ   = $(SRC:src/%.c=$(B)/%.o)
LIB_OBJ = $(filter-out $(B)/main.o,$(OBJ))
UNIT_SRC = $(wildcard tests/unit/*.c)
UNIT_OBJ = $(UNIT_SRC:tests/unit/%.c=$(B)/unit/%.o)
TOOL_SRC = $(wildcard tests/tools/*.c)
TOOLS    = $(TOOL_SRC:tests/tools/%.c=$(B)/tools/%)

.PHONY: all check unit blackbox bench install uninstall clean

all: $(BIN)

$(BIN): $(OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $(OBJ) $(DEPS_LIBS)

$(B)/%.o: src/%.c | $(B)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/unit/%.o: tests/unit/%.c | $(B)/unit
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Isrc -c -o $@ $<

$(B)/unit-tests: $(UNIT_OBJ) $(LIB_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEPS_LIBS)

$(B)/tools/%: tests/tools/%.c | $(B)/tools
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< -pthread

# The decoder benchmark links the daemon's objects, like the unit tests.
$(B)/bench-decoder: tests/bench/bench_decoder.c $(LIB_OBJ) | $(B)
	$(CC) $(ALL_CFLAGS) -Isrc $(ALL_LDFLAGS) -o $@ $< $(LIB_OBJ) $(DEPS_LIBS)

$(B) $(B)/unit $(B)/tools:
	mkdir -p $@

check: unit blackbox

unit: $(B)/unit-tests
	cd tests && ../$(B)/unit-tests

blackbox: $(BIN) $(TOOLS)
	DEYE_MITM=$(abspath $(BIN)) DEYE_TOOLS=$(abspath $(B)/tools) \
	DEYE_SANITIZE=$(SANITIZE) python3 tests/blackbox/run.py

bench: $(BIN) $(TOOLS) $(B)/bench-decoder
	DEYE_MITM=$(abspath $(BIN)) DEYE_TOOLS=$(abspath $(B)/tools) \
	DEYE_BENCH_DECODER=$(abspath $(B)/bench-decoder) \
	python3 tests/bench/bench.py

install: $(BIN)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(DOCDIR)
	$(INSTALL) -m 755 $(BIN) $(DESTDIR)$(BINDIR)/deye-mitm
	$(INSTALL) -m 644 contrib/deye-mitm.8 $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 644 contrib/deye-mitm.conf.5 $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 644 deye-mitm.conf.example $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 644 contrib/deye-mitm.service $(DESTDIR)$(DOCDIR)/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/deye-mitm $(DESTDIR)$(MANDIR)/man8/deye-mitm.8 \
	    $(DESTDIR)$(MANDIR)/man5/deye-mitm.conf.5
	rm -rf $(DESTDIR)$(DOCDIR)

clean:
	rm -rf build deye-mitm

-include $(OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(B)/bench-decoder.d
