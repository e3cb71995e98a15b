/*
 * request_problems.h
 *		The list of what is wrong with a payout request.
 */
#ifndef MONEROO_REQUEST_PROBLEMS_H
#define MONEROO_REQUEST_PROBLEMS_H

#include "utils/jsonb.h"

/*
 * What is wrong with a request.  Every check notes its problems rather than
 * raising the first: the caller gets the first in errmsg and all of them in
 * errdetail, so that one round trip fixes a request (as Moneroo's own 422
 * lists its field errors).  A field with a problem is not checked further,
 * and a check that needs a sound field (the recipient needs the method) is
 * left out when that field has one.
 */
typedef enum ProblemKind
{
	PROBLEM_MISSING,
	PROBLEM_INVALID,
	PROBLEM_UNKNOWN_KEY,
} ProblemKind;

typedef struct Problem
{
	ProblemKind kind;
	const char *field;			/* its path: customer.email, metadata.x */
	const char *summary;		/* NULL, or a few words for errmsg */
	const char *detail;			/* a full sentence */
	const char *hint;			/* NULL: the default for its kind */
} Problem;

/* A key of a JSON object, and what its value may be. */
typedef struct FieldRule
{
	const char *name;
	int			max_chars;		/* 0: not a free-text field */
	bool		required;
} FieldRule;

/* Starts a new request: problems left by a check that raised another error are dropped. */
extern void forget_problems(void);

extern void note_problem(ProblemKind kind, const char *field, const char *summary,
						 const char *detail, const char *hint);

/* Each notes one problem and returns false, so that a check can "return reject(...)". */
extern bool reject(const char *field, const char *detail, const char *hint);
extern bool reject_missing(const char *field);
extern bool reject_type(const char *field, const char *expected, JsonbValue *value);

/*
 * Notes keys of object that no rule names (prefix: the object's path and a
 * dot, or "" at the top level).
 */
extern void reject_unknown_keys(JsonbContainer *object, const FieldRule *rules, int nrules,
								const char *prefix);

/*
 * Raises the problems noted, if any: 22023, the first in errmsg, every one
 * in errdetail; returns when there is none.
 */
extern void raise_problems(void);

#endif
