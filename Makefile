# PGXS build of the moneroo extension.  Override PG_CONFIG to build against
# another server, for example: make PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
EXTENSION = moneroo
MODULE_big = moneroo
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA = $(sort $(wildcard sql/moneroo--*.sql))
PGFILEDESC = "moneroo - Moneroo payouts from PostgreSQL"

PG_CPPFLAGS = -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare -I$(srcdir)/src
SHLIB_LINK = -lcurl

# pg_regress files: everything in sql/ except the extension scripts.
REGRESS = $(sort $(basename $(notdir $(filter-out sql/moneroo--%,$(wildcard sql/*.sql)))))
REGRESS_OPTS = --inputdir=$(srcdir)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
