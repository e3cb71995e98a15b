/*
 * database_identity.h
 *		moneroo_database: the database whose payouts these are, so that a
 *		copy or a restore of it pays nothing until an operator adopts it.
 */
#ifndef MONEROO_DATABASE_IDENTITY_H
#define MONEROO_DATABASE_IDENTITY_H

/*
 * NULL when this database is the one recorded (or is still at 1.2, before
 * anything was recorded); otherwise the database(s) recorded, as text for
 * messages: this one is a copy or a restore, and nothing may be sent.
 */
extern char *database_identity_copy_of(void);

/*
 * Records this database as the one, in place of whatever was recorded,
 * as the calling role; returns what was recorded before (NULL: this one).
 */
extern char *database_identity_adopt(void);

#endif
