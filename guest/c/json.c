// A strict JSON reader (RFC 8259 grammar) over a buffer, and a writer.
#include "json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Deeper nesting is refused rather than recursed into.
#define MAX_DEPTH 64

typedef struct {
  const char *at;
  const char *end;
  const char *why;
} reader;

static bool fail(reader *r, const char *why) {
  if (r->why == NULL) r->why = why;
  return false;
}

static void skip_space(reader *r) {
  while (r->at < r->end && (*r->at == ' ' || *r->at == '\t' || *r->at == '\n' || *r->at == '\r'))
    r->at++;
}

static bool eat(reader *r, char c) {
  skip_space(r);
  if (r->at < r->end && *r->at == c) {
    r->at++;
    return true;
  }
  return false;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads four hex digits after `\u`.
static bool read_hex4(reader *r, uint32_t *out) {
  if (r->end - r->at < 4) return fail(r, "truncated \\u escape");
  *out = 0;
  for (int i = 0; i < 4; i++) {
    int digit = hex_digit(*r->at++);
    if (digit < 0) return fail(r, "bad \\u escape");
    *out = *out << 4 | (uint32_t)digit;
  }
  return true;
}

static void put_utf8(json_buffer *out, uint32_t c) {
  char bytes[4];
  size_t n;
  if (c < 0x80) {
    bytes[0] = (char)c;
    n = 1;
  } else if (c < 0x800) {
    bytes[0] = (char)(0xC0 | c >> 6);
    bytes[1] = (char)(0x80 | (c & 0x3F));
    n = 2;
  } else if (c < 0x10000) {
    bytes[0] = (char)(0xE0 | c >> 12);
    bytes[1] = (char)(0x80 | (c >> 6 & 0x3F));
    bytes[2] = (char)(0x80 | (c & 0x3F));
    n = 3;
  } else {
    bytes[0] = (char)(0xF0 | c >> 18);
    bytes[1] = (char)(0x80 | (c >> 12 & 0x3F));
    bytes[2] = (char)(0x80 | (c >> 6 & 0x3F));
    bytes[3] = (char)(0x80 | (c & 0x3F));
    n = 4;
  }
  json_raw(out, bytes, n);
}

// Reads a string literal (the reader is on its opening quote); decodes it
// into `out` when `out` is not NULL.
static bool read_string(reader *r, json_buffer *out) {
  r->at++;
  while (r->at < r->end) {
    unsigned char c = (unsigned char)*r->at++;
    if (c == '"') return true;
    if (c < 0x20) return fail(r, "control character in a string");
    if (c != '\\') {
      if (out) json_raw(out, (const char *)&c, 1);
      continue;
    }
    if (r->at == r->end) break;
    char escape = *r->at++;
    const char *simple = strchr("\"\\/bfnrt", escape);
    if (escape != '\0' && simple != NULL) {
      if (out) json_raw(out, &"\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"], 1);
      continue;
    }
    if (escape != 'u') return fail(r, "bad escape in a string");
    uint32_t code;
    if (!read_hex4(r, &code)) return false;
    if (code >= 0xD800 && code < 0xDC00) {
      // A high surrogate must be followed by a low one.
      uint32_t low;
      if (r->end - r->at < 2 || r->at[0] != '\\' || r->at[1] != 'u')
        return fail(r, "lone surrogate in a string");
      r->at += 2;
      if (!read_hex4(r, &low)) return false;
      if (low < 0xDC00 || low >= 0xE000) return fail(r, "lone surrogate in a string");
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    } else if (code >= 0xDC00 && code < 0xE000) {
      return fail(r, "lone surrogate in a string");
    }
    if (out) put_utf8(out, code);
  }
  return fail(r, "unterminated string");
}

static bool read_digits(reader *r) {
  const char *start = r->at;
  while (r->at < r->end && *r->at >= '0' && *r->at <= '9') r->at++;
  return r->at > start;
}

static bool read_number(reader *r) {
  if (*r->at == '-') r->at++;
  if (r->at < r->end && *r->at == '0') {
    r->at++;
  } else if (!read_digits(r)) {
    return fail(r, "bad number");
  }
  if (r->at < r->end && *r->at == '.') {
    r->at++;
    if (!read_digits(r)) return fail(r, "bad number");
  }
  if (r->at < r->end && (*r->at == 'e' || *r->at == 'E')) {
    r->at++;
    if (r->at < r->end && (*r->at == '+' || *r->at == '-')) r->at++;
    if (!read_digits(r)) return fail(r, "bad number");
  }
  return true;
}

static bool read_literal(reader *r, const char *word) {
  size_t len = strlen(word);
  if ((size_t)(r->end - r->at) < len || memcmp(r->at, word, len) != 0)
    return fail(r, "expected a JSON value");
  r->at += len;
  return true;
}

static bool read_value(reader *r, int depth);

// Reads an object; with `member`, decodes each key and reports each member.
static bool read_object(reader *r, int depth, json_member_fn member, void *context) {
  r->at++;
  if (eat(r, '}')) return true;
  json_buffer key = {0};
  bool ok = false;
  do {
    skip_space(r);
    if (r->at == r->end || *r->at != '"') {
      fail(r, "expected a key");
      break;
    }
    key.len = 0;
    if (!read_string(r, member ? &key : NULL)) break;
    if (!eat(r, ':')) {
      fail(r, "expected ':'");
      break;
    }
    skip_space(r);
    json_text value = {r->at, 0};
    if (!read_value(r, depth + 1)) break;
    value.len = (size_t)(r->at - value.ptr);
    json_text key_text = {key.ptr, key.len};
    if (member && !member(key_text, value, context)) {
      fail(r, "stopped");
      break;
    }
    if (eat(r, '}')) {
      ok = true;
      break;
    }
  } while (eat(r, ',') || fail(r, "expected ',' or '}'"));
  free(key.ptr);
  return ok;
}

static bool read_array(reader *r, int depth) {
  r->at++;
  if (eat(r, ']')) return true;
  do {
    if (!read_value(r, depth + 1)) return false;
    if (eat(r, ']')) return true;
  } while (eat(r, ',') || fail(r, "expected ',' or ']'"));
  return false;
}

static bool read_value(reader *r, int depth) {
  if (depth > MAX_DEPTH) return fail(r, "nested too deeply");
  skip_space(r);
  if (r->at == r->end) return fail(r, "unexpected end of input");
  switch (*r->at) {
    case '{': return read_object(r, depth, NULL, NULL);
    case '[': return read_array(r, depth);
    case '"': return read_string(r, NULL);
    case 't': return read_literal(r, "true");
    case 'f': return read_literal(r, "false");
    case 'n': return read_literal(r, "null");
    default:
      if (*r->at == '-' || (*r->at >= '0' && *r->at <= '9')) return read_number(r);
      return fail(r, "expected a JSON value");
  }
}

bool json_text_is(json_text text, const char *word) {
  return text.len == strlen(word) && (text.len == 0 || memcmp(text.ptr, word, text.len) == 0);
}

bool json_object_members(json_text text, json_member_fn member, void *context, const char **why) {
  reader r = {text.ptr, text.ptr + text.len, NULL};
  skip_space(&r);
  bool ok = r.at < r.end && *r.at == '{' ? read_object(&r, 0, member, context)
                                         : fail(&r, "not an object");
  skip_space(&r);
  if (ok && r.at != r.end) ok = fail(&r, "trailing characters");
  if (!ok && why) *why = r.why;
  return ok;
}

char *json_string(json_text value) {
  reader r = {value.ptr, value.ptr + value.len, NULL};
  if (value.len == 0 || *r.at != '"') return NULL;
  json_buffer out = {0};
  json_raw(&out, "", 0);
  // A C string cannot hold a NUL character.
  if (!read_string(&r, &out) || r.at != r.end || strlen(out.ptr) != out.len) {
    free(out.ptr);
    return NULL;
  }
  return out.ptr;
}

bool json_int(json_text value, int64_t *out) {
  const char *at = value.ptr, *end = value.ptr + value.len;
  bool negative = at < end && *at == '-';
  if (negative) at++;
  // No leading zeros, as in the grammar.
  if (at == end || (*at == '0' && end - at > 1)) return false;
  uint64_t magnitude = 0;
  for (; at < end; at++) {
    if (*at < '0' || *at > '9') return false;
    uint64_t digit = (uint64_t)(*at - '0');
    if (magnitude > (UINT64_MAX - digit) / 10) return false;
    magnitude = magnitude * 10 + digit;
  }
  if (magnitude > (uint64_t)INT64_MAX + negative) return false;
  *out = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
  return true;
}

void json_raw(json_buffer *out, const char *text, size_t len) {
  if (out->len + len + 1 > out->cap) {
    size_t cap = out->cap ? out->cap : 64;
    while (cap < out->len + len + 1) cap *= 2;
    out->ptr = realloc(out->ptr, cap);
    if (out->ptr == NULL) abort();
    out->cap = cap;
  }
  memcpy(out->ptr + out->len, text, len);
  out->len += len;
  out->ptr[out->len] = '\0';
}

void json_quote(json_buffer *out, const char *text, size_t len) {
  json_raw(out, "\"", 1);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c == '"' || c == '\\') {
      char escaped[2] = {'\\', (char)c};
      json_raw(out, escaped, 2);
    } else if (c < 0x20) {
      char escaped[7];
      snprintf(escaped, sizeof escaped, "\\u%04x", c);
      json_raw(out, escaped, 6);
    } else {
      json_raw(out, (const char *)&c, 1);
    }
  }
  json_raw(out, "\"", 1);
}

void json_integer(json_buffer *out, int64_t value) {
  char digits[24];
  int n = snprintf(digits, sizeof digits, "%" PRId64, value);
  json_raw(out, digits, (size_t)n);
}
