/*
 * message_text.c
 *		Cutting text for messages: one rule for what users typed and for
 *		what Moneroo answered.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"

#include "common/message_text.h"

char *
text_for_message(const char *s, size_t len, size_t max_bytes, TextControls controls)
{
	StringInfoData out;
	size_t		kept = len > max_bytes ? pg_mbcliplen(s, len, max_bytes) : len;

	initStringInfo(&out);
	for (size_t i = 0; i < kept; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if ((c < 0x20 || c == 0x7f) && controls == TEXT_CONTROLS_AS_SPACES)
			c = ' ';
		appendStringInfoChar(&out, (char) c);
	}
	if (kept < len)
		appendStringInfoString(&out, "...");
	return out.data;
}

void
text_clip_copy(char *dst, const char *src, size_t size)
{
	int			len = pg_mbcliplen(src, strlen(src), size - 1);

	memcpy(dst, src, len);
	dst[len] = '\0';
}
