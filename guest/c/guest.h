// What the C handlers share, as the Rust guest SDK does for Rust ones.
//
// A handler defines `handle`: it gets the request with its body read whole
// and returns a response, written whole after it returns. Session calls
// are the generated `edge_session_current_*` and `edge_session_sessions_*`
// functions of handler.h; `session_failure` turns their error into the
// status and `{"error": message}` that the Rust guests answer with.
#ifndef EDGE_SESSION_GUEST_H
#define EDGE_SESSION_GUEST_H

#include <stdint.h>

#include "handler.h"
#include "json.h"

// Larger request bodies get a 413, as in the Rust SDK.
#define MAX_REQUEST_BODY (1024 * 1024)
#define MAX_HEADERS 4

typedef struct {
  // "GET", "POST", …
  json_text method;
  // The path, without the query.
  json_text path;
  json_text body;
} request;

typedef struct {
  uint16_t status;
  size_t header_count;
  struct {
    const char *name;
    const char *value;
  } headers[MAX_HEADERS];
  json_buffer body;
} response;

// Defined by each handler.
response handle(const request *request);

// A response with `body` (JSON text) as `application/json`.
response json_response(uint16_t status, json_buffer body);
// `{"error": message}` with `status`.
response error_response(uint16_t status, const char *message);
// A `text/plain` response.
response text_response(uint16_t status, const char *text);
// Adds a header (names and values are static strings).
void add_header(response *response, const char *name, const char *value);
// The response for a failed session call; frees `error`.
response session_failure(edge_session_sessions_error_t *error);

// A string argument for a session call, borrowing `text`.
handler_string_t wit_string(json_text text);

#endif
