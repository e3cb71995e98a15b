# PGXS build of the moneroo extension.  Override PG_CONFIG to build against
# another server, for example: make PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
EXTENSION = moneroo
MODULE_big = moneroo
# src/ is in folders by layer (src/README.md); moneroo.c, _PG_init, is alone at its root.
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c src/*/*.c)))
# Every version's script and every upgrade script (moneroo--1.0.sql,
# moneroo--1.0--1.1.sql, ...), beside moneroo.control: CREATE EXTENSION runs
# the first and then the upgrades up to default_version in moneroo.control.
DATA = $(sort $(wildcard moneroo--*.sql))
PGFILEDESC = "moneroo - Moneroo payouts from PostgreSQL"
# Prometheus: the exporter's queries and the alert rules (README.md
# "Monitoring"), installed with the extension's documentation,
# $(pg_config --docdir)/extension/.
DOCS = moneroo-exporter.yml moneroo-alerts.yml

# The version has one home: default_version in moneroo.control.  The C code
# gets it as MONEROO_VERSION (a string literal, e.g. in the User-Agent
# "moneroo-postgresql/" MONEROO_VERSION), and META.json must announce the same
# version in PGXN's semver form (1.1 -> 1.1.0), and debian/changelog's newest
# entry must package it: check-version below fails the build when either does
# not.  (Checked rather than generated from a META.json.in:
# PGXN and test/packaging/60_upgrade.sh read the committed META.json, which
# stays a plain file that a generated copy could silently get out of step with.)
EXTVERSION := $(shell sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" moneroo.control)
ifeq ($(EXTVERSION),)
$(error cannot read default_version from moneroo.control)
endif
EXTVERSION_SEMVER = $(if $(word 3,$(subst ., ,$(EXTVERSION))),$(EXTVERSION),$(EXTVERSION).0)

PG_CPPFLAGS = -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare -I$(srcdir)/src \
	-DMONEROO_VERSION=\"$(EXTVERSION)\"
SHLIB_LINK = -lcurl

# pg_regress files, where PGXS looks for them: sql/NAME.sql, compared with
# expected/NAME.out.
#   PGHOST=... PGPORT=... PGUSER=postgres make installcheck
# runs them against a running server that preloads moneroo
# (shared_preload_libraries = 'moneroo'), in a database contrib_regression
# that pg_regress creates, with CREATE EXTENSION moneroo done by pg_regress.
# The tests write nothing that outlives them; the worker serves only
# moneroo.database, so nothing is sent from contrib_regression.
REGRESS = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --load-extension=moneroo

# Isolation specs: test/isolation/specs/NAME.spec, compared with
# test/isolation/expected/NAME.out.  They need the database the worker serves,
# with the mock.* helpers (test/lib/helpers.sql) and the mock running, so
# installcheck runs them with --use-existing in $(PGDATABASE) [moneroo_test]:
# what `bash test/run.sh --up` leaves running (source the env file it prints,
# then `make installcheck`).
ISOLATION = $(sort $(basename $(notdir $(wildcard test/isolation/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test/isolation --use-existing

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# after the include: pgxs.mk adds --dbname=$(ISOLATION_TESTDB) to ISOLATION_OPTS
ISOLATION_TESTDB = $(or $(PGDATABASE),moneroo_test)

# PGXS tracks no dependencies on headers or flags: a new version, or a
# changed header (a struct in shared memory, say), must reach every object
# (only the objects are rebuilt, by make's own rules).
$(OBJS): moneroo.control $(wildcard src/*/*.h)

# META.json's "version" and provides.moneroo.version must be
# $(EXTVERSION_SEMVER).  Needs python3 (to read JSON exactly); without it the
# check is skipped with a warning.
all: check-version
.PHONY: check-version
check-version:
	@if [ ! -f META.json ]; then \
		echo "META.json is missing (it must announce version $(EXTVERSION_SEMVER), from moneroo.control)" >&2; exit 1; \
	elif ! command -v python3 >/dev/null 2>&1; then \
		echo "WARNING: python3 not found: META.json's versions not checked against moneroo.control ($(EXTVERSION))" >&2; \
	else \
		python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); want = sys.argv[2]; \
got = [("version", m.get("version")), ("provides.moneroo.version", m.get("provides", {}).get("moneroo", {}).get("version"))]; \
bad = [k + " is " + repr(v) for k, v in got if v != want]; \
bad and sys.exit("META.json disagrees with moneroo.control (default_version = %r, so META.json must say %r): %s" % (sys.argv[3], want, "; ".join(bad)))' \
			META.json '$(EXTVERSION_SEMVER)' '$(EXTVERSION)'; \
	fi
	@# debian/changelog's newest entry must package this version: "moneroo
	@# (1.2) ...".  The package is native (debian/source/format), so its version
	@# is default_version itself, without a Debian revision.  (Copies without
	@# debian/, such as a PGXN archive, have nothing to check.)
	@if [ -f debian/changelog ]; then \
		got=$$(sed -n '1s/^moneroo (\([^)]*\)).*/\1/p' debian/changelog); \
		if [ "$$got" != '$(EXTVERSION)' ]; then \
			echo "debian/changelog disagrees with moneroo.control (default_version = '$(EXTVERSION)'): its newest entry packages '$${got:-?}' (its first line must be \"moneroo ($(EXTVERSION)) ...\")" >&2; \
			exit 1; \
		fi; \
	fi

# make deb [DEB_OUTDIR=folder]: the Debian package postgresql-15-moneroo, built
# by test/package.sh (as root, from a copy of this checkout; see debian/rules).
.PHONY: deb
deb:
	bash test/package.sh $(DEB_OUTDIR)
