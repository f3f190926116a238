// Just enough JSON for the C handlers: walk the members of an object,
// read a string or an integer, and write JSON text. Session data and field
// values are JSON text that the host validates; the host does the real
// work (field updates), so a handler only reads request bodies and writes
// responses.
#ifndef EDGE_SESSION_JSON_H
#define EDGE_SESSION_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// A piece of text, not NUL-terminated.
typedef struct {
  const char *ptr;
  size_t len;
} json_text;

// Called for each member of an object: the key decoded (valid until the
// call returns) and the value as raw JSON text. Returning false stops the walk.
typedef bool (*json_member_fn)(json_text key, json_text value, void *context);

// Whether `text` is exactly the NUL-terminated `word`.
bool json_text_is(json_text text, const char *word);

// Whether `text` is exactly one well-formed JSON object (whitespace around
// it allowed); calls `member` for each member in order. On failure `why`
// says what is wrong.
bool json_object_members(json_text text, json_member_fn member, void *context, const char **why);

// The value as a NUL-terminated string (malloc'd) when it is a JSON string
// without NUL characters; otherwise NULL.
char *json_string(json_text value);

// Whether the value is a JSON integer that fits in int64_t (no fraction,
// no exponent), stored in `out`.
bool json_int(json_text value, int64_t *out);

// A growing NUL-terminated buffer of text, JSON mostly. Running out of memory
// traps (abort), as it would in any other guest language.
typedef struct {
  char *ptr;
  size_t len;
  size_t cap;
} json_buffer;

void json_raw(json_buffer *out, const char *text, size_t len);
// `text` as a JSON string literal, quoted and escaped.
void json_quote(json_buffer *out, const char *text, size_t len);
void json_integer(json_buffer *out, int64_t value);

#endif
