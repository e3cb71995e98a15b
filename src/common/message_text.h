/*
 * message_text.h
 *		Text from users and from Moneroo, cut to fit a message.
 */
#ifndef MONEROO_MESSAGE_TEXT_H
#define MONEROO_MESSAGE_TEXT_H

/* Room for messages kept in shared memory (last_error, a transfer's result). */
#define LAST_ERROR_BYTES 512
#define DETAIL_BYTES 1024

/* Longest piece of a user's input repeated in an error message. */
#define ECHO_MAX_BYTES 64
/* Longest piece of Moneroo's words kept in a message or a column. */
#define MONEROO_TEXT_MAX_BYTES 500

/* What becomes of control characters in text_for_message. */
typedef enum TextControls
{
	TEXT_KEEP_CONTROLS,			/* a user's own input, repeated as given */
	TEXT_CONTROLS_AS_SPACES		/* text from outside, bound for logs and columns */
} TextControls;

/*
 * The text made fit for a message: at most max_bytes, never cutting a
 * character in two, and "..." when it was cut.  palloc'd.
 */
extern char *text_for_message(const char *s, size_t len, size_t max_bytes,
							  TextControls controls);

/* strlcpy into a fixed buffer, never cutting a character in two. */
extern void text_clip_copy(char *dst, const char *src, size_t size);

#endif
