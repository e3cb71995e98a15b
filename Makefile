# PGXS build of the moneroo extension.  Override PG_CONFIG to build against
# another server, for example: make PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
EXTENSION = moneroo
MODULE_big = moneroo
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
# Every version's script and every upgrade script (moneroo--1.0.sql,
# moneroo--1.0--1.1.sql, ...): CREATE EXTENSION runs the first and then the
# upgrades up to default_version in moneroo.control.
DATA = $(sort $(wildcard sql/moneroo--*.sql))
PGFILEDESC = "moneroo - Moneroo payouts from PostgreSQL"

PG_CPPFLAGS = -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare -I$(srcdir)/src
SHLIB_LINK = -lcurl

# pg_regress files: everything in sql/ except the extension scripts.
#   PGHOST=... PGPORT=... PGUSER=postgres make installcheck
# runs them against a running server that preloads moneroo
# (shared_preload_libraries = 'moneroo'), in a database contrib_regression
# that pg_regress creates, with CREATE EXTENSION moneroo done by pg_regress.
# The tests write nothing that outlives them; the worker serves only
# moneroo.database, so nothing is sent from contrib_regression.
REGRESS = $(sort $(basename $(notdir $(filter-out sql/moneroo--%,$(wildcard sql/*.sql)))))
REGRESS_OPTS = --inputdir=$(srcdir) --load-extension=moneroo

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
