/*
 * request_problems.c
 *		What is wrong with a payout request: noted by every check, raised at
 *		once (see request_problems.h).
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"

#include "common/jsonb_fields.h"
#include "common/message_text.h"
#include "table/request_problems.h"

/* errdetail lists at most this many; a request of 10,000 stray keys stays readable */
#define PROBLEMS_LISTED 20

static List *problems = NIL;

void
forget_problems(void)
{
	problems = NIL;
}

void
note_problem(ProblemKind kind, const char *field, const char *summary,
			 const char *detail, const char *hint)
{
	Problem    *p = palloc(sizeof(Problem));

	p->kind = kind;
	p->field = field;
	p->summary = summary;
	p->detail = detail;
	p->hint = hint;
	problems = lappend(problems, p);
}

/* Always false, so that a check can "return reject(...)". */
bool
reject(const char *field, const char *detail, const char *hint)
{
	note_problem(PROBLEM_INVALID, field, NULL, detail, hint);
	return false;
}

bool
reject_missing(const char *field)
{
	note_problem(PROBLEM_MISSING, field, NULL, "The field is required.", NULL);
	return false;
}

bool
reject_type(const char *field, const char *expected, JsonbValue *value)
{
	return reject(field,
				  psprintf("Expected %s, got %s.", expected, jsonb_type_name(value)),
				  NULL);
}

static char *
default_hint(const Problem *p)
{
	switch (p->kind)
	{
		case PROBLEM_MISSING:
			return psprintf("Add \"%s\"; the request format is in the moneroo README.", p->field);
		case PROBLEM_UNKNOWN_KEY:
			return pstrdup("Remove the key or check its spelling.");
		case PROBLEM_INVALID:
			break;
	}
	return psprintf("Correct \"%s\" and send the request again; the request format is in the moneroo README.",
					p->field);
}

/*
 * Raises the problems noted, if any: 22023, the first in errmsg (naming its
 * field, as before problems were listed), every one in errdetail on a line
 * of its own, "path: sentence".
 */
void
raise_problems(void)
{
	List	   *noted = problems;
	Problem    *first;
	StringInfoData detail;
	int			n = list_length(noted);
	ListCell   *lc;

	problems = NIL;
	if (n == 0)
		return;
	first = linitial(noted);
	initStringInfo(&detail);
	foreach(lc, noted)
	{
		Problem    *p = lfirst(lc);
		int			i = foreach_current_index(lc);

		if (i == PROBLEMS_LISTED)
		{
			appendStringInfo(&detail, "\n... and %d more problems.", n - i);
			break;
		}
		appendStringInfo(&detail, "%s%s: %s", i ? "\n" : "", p->field, p->detail);
	}
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			first->kind == PROBLEM_MISSING ?
			errmsg("missing \"%s\" in payout request", first->field) :
			first->kind == PROBLEM_UNKNOWN_KEY ?
			errmsg("unknown key \"%s\" in payout request", first->field) :
			first->summary ?
			errmsg("invalid \"%s\" in payout request: %s", first->field, first->summary) :
			errmsg("invalid \"%s\" in payout request", first->field),
			errdetail_internal("%s", detail.data),
			n == 1 ? errhint("%s", first->hint ? first->hint : default_hint(first)) :
			errhint("Correct the %d problems found and send the request again; the request format is in the moneroo README.", n));
}

/*
 * Notes keys that no rule names: a misspelt optional field would otherwise
 * be dropped without anyone noticing.
 */
void
reject_unknown_keys(JsonbContainer *object, const FieldRule *rules, int nrules,
					const char *prefix)
{
	JsonbIterator *it = JsonbIteratorInit(object);
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *allowed = NULL;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		known = false;
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		for (int i = 0; i < nrules && !known; i++)
			known = strlen(rules[i].name) == v.val.string.len &&
				memcmp(rules[i].name, v.val.string.val, v.val.string.len) == 0;
		if (known)
			continue;
		if (allowed == NULL)
		{
			StringInfoData names;

			initStringInfo(&names);
			for (int i = 0; i < nrules; i++)
				appendStringInfo(&names, "%s%s", i ? ", " : "", rules[i].name);
			allowed = names.data;
		}
		key = text_for_message(v.val.string.val, v.val.string.len,
							   ECHO_MAX_BYTES, TEXT_KEEP_CONTROLS);
		note_problem(PROBLEM_UNKNOWN_KEY, psprintf("%s%s", prefix, key), NULL,
					 psprintf("Not an allowed key; the allowed keys%s%s are: %s.",
							  prefix[0] ? " of " : "",
							  prefix[0] ? pnstrdup(prefix, strlen(prefix) - 1) : "",
							  allowed),
					 NULL);
	}
}
