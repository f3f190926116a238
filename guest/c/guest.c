// The wasi:http side of the C handlers: reads the request, calls `handle`,
// sends its response.
#include "guest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Most bytes `blocking-write-and-flush` accepts per call.
#define WRITE_CHUNK 4096

static const char *const METHODS[] = {
    [WASI_HTTP_TYPES_METHOD_GET] = "GET",         [WASI_HTTP_TYPES_METHOD_HEAD] = "HEAD",
    [WASI_HTTP_TYPES_METHOD_POST] = "POST",       [WASI_HTTP_TYPES_METHOD_PUT] = "PUT",
    [WASI_HTTP_TYPES_METHOD_DELETE] = "DELETE",   [WASI_HTTP_TYPES_METHOD_CONNECT] = "CONNECT",
    [WASI_HTTP_TYPES_METHOD_OPTIONS] = "OPTIONS", [WASI_HTTP_TYPES_METHOD_TRACE] = "TRACE",
    [WASI_HTTP_TYPES_METHOD_PATCH] = "PATCH",
};

response json_response(uint16_t status, json_buffer body) {
  response response = {.status = status, .body = body};
  add_header(&response, "content-type", "application/json");
  return response;
}

response error_response(uint16_t status, const char *message) {
  json_buffer body = {0};
  json_raw(&body, "{\"error\":", 9);
  json_quote(&body, message, strlen(message));
  json_raw(&body, "}", 1);
  return json_response(status, body);
}

response text_response(uint16_t status, const char *text) {
  response response = {.status = status};
  json_raw(&response.body, text, strlen(text));
  add_header(&response, "content-type", "text/plain; charset=utf-8");
  return response;
}

void add_header(response *response, const char *name, const char *value) {
  if (response->header_count == MAX_HEADERS) abort();
  response->headers[response->header_count].name = name;
  response->headers[response->header_count].value = value;
  response->header_count++;
}

response session_failure(edge_session_sessions_error_t *error) {
  static const struct {
    uint16_t status;
    const char *message;
  } KINDS[] = {
      [EDGE_SESSION_SESSIONS_ERROR_NOT_FOUND] = {404, "session not found"},
      [EDGE_SESSION_SESSIONS_ERROR_CONFLICT] = {409, "session changed since it was read"},
      [EDGE_SESSION_SESSIONS_ERROR_INVALID_ARGUMENT] = {400, "invalid argument: "},
      [EDGE_SESSION_SESSIONS_ERROR_TOO_LARGE] = {413, "session too large"},
      [EDGE_SESSION_SESSIONS_ERROR_UNAVAILABLE] = {503, "session store unavailable: "},
      [EDGE_SESSION_SESSIONS_ERROR_ACCESS_DENIED] = {403, "this route has no session access"},
      [EDGE_SESSION_SESSIONS_ERROR_INTERNAL] = {500, "session host failure: "},
  };
  json_buffer message = {0};
  json_raw(&message, KINDS[error->tag].message, strlen(KINDS[error->tag].message));
  // The kinds that carry a reason (all of them the same string member).
  if (error->tag == EDGE_SESSION_SESSIONS_ERROR_INVALID_ARGUMENT ||
      error->tag == EDGE_SESSION_SESSIONS_ERROR_UNAVAILABLE ||
      error->tag == EDGE_SESSION_SESSIONS_ERROR_INTERNAL)
    json_raw(&message, (const char *)error->val.internal.ptr, error->val.internal.len);
  response response = error_response(KINDS[error->tag].status, message.ptr);
  free(message.ptr);
  edge_session_sessions_error_free(error);
  return response;
}

handler_string_t wit_string(json_text text) {
  return (handler_string_t){(uint8_t *)text.ptr, text.len};
}

// Reads the whole body into `out`; false when it cannot be read, with
// `*too_large` set when it exceeds MAX_REQUEST_BODY.
static bool read_body(wasi_http_types_borrow_incoming_request_t incoming, json_buffer *out,
                      bool *too_large) {
  wasi_http_types_own_incoming_body_t body;
  wasi_http_types_own_input_stream_t stream;
  if (!wasi_http_types_method_incoming_request_consume(incoming, &body)) return false;
  if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(body),
                                                   &stream)) {
    wasi_http_types_incoming_body_drop_own(body);
    return false;
  }
  bool ok = true;
  json_raw(out, "", 0);
  for (;;) {
    handler_list_u8_t chunk;
    wasi_io_streams_stream_error_t error;
    if (!wasi_io_streams_method_input_stream_blocking_read(
            wasi_io_streams_borrow_input_stream(stream), 64 * 1024, &chunk, &error)) {
      ok = error.tag == WASI_IO_STREAMS_STREAM_ERROR_CLOSED;
      wasi_io_streams_stream_error_free(&error);
      break;
    }
    *too_large = out->len + chunk.len > MAX_REQUEST_BODY;
    if (!*too_large) json_raw(out, (const char *)chunk.ptr, chunk.len);
    handler_list_u8_free(&chunk);
    if (*too_large) {
      ok = false;
      break;
    }
  }
  wasi_io_streams_input_stream_drop_own(stream);
  wasi_http_types_future_trailers_drop_own(wasi_http_types_static_incoming_body_finish(body));
  return ok;
}

static void send(response *response, wasi_http_types_own_response_outparam_t out) {
  char length[24];
  snprintf(length, sizeof length, "%zu", response->body.len);
  wasi_http_types_tuple2_field_name_field_value_t entries[MAX_HEADERS + 1];
  size_t count = 0;
  for (; count < response->header_count; count++) {
    entries[count].f0 = (handler_string_t){(uint8_t *)response->headers[count].name,
                                           strlen(response->headers[count].name)};
    entries[count].f1 = (wasi_http_types_field_value_t){(uint8_t *)response->headers[count].value,
                                                        strlen(response->headers[count].value)};
  }
  entries[count].f0 = (handler_string_t){(uint8_t *)"content-length", 14};
  entries[count].f1 = (wasi_http_types_field_value_t){(uint8_t *)length, strlen(length)};
  wasi_http_types_list_tuple2_field_name_field_value_t list = {entries, count + 1};

  // Headers and status are the handlers' own constants: a failure here is a bug.
  wasi_http_types_own_fields_t fields;
  wasi_http_types_header_error_t header_error;
  if (!wasi_http_types_static_fields_from_list(&list, &fields, &header_error)) abort();
  wasi_http_types_own_outgoing_response_t outgoing =
      wasi_http_types_constructor_outgoing_response(fields);
  wasi_http_types_borrow_outgoing_response_t borrowed =
      wasi_http_types_borrow_outgoing_response(outgoing);
  wasi_http_types_own_outgoing_body_t body;
  if (!wasi_http_types_method_outgoing_response_set_status_code(borrowed, response->status) ||
      !wasi_http_types_method_outgoing_response_body(borrowed, &body))
    abort();
  wasi_http_types_result_own_outgoing_response_error_code_t result = {.is_err = false,
                                                                      .val.ok = outgoing};
  wasi_http_types_static_response_outparam_set(out, &result);

  wasi_http_types_own_output_stream_t stream;
  if (!wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(body),
                                                  &stream))
    abort();
  bool written = true;
  for (size_t at = 0; written && at < response->body.len; at += WRITE_CHUNK) {
    size_t len = response->body.len - at < WRITE_CHUNK ? response->body.len - at : WRITE_CHUNK;
    handler_list_u8_t chunk = {(uint8_t *)response->body.ptr + at, len};
    wasi_io_streams_stream_error_t error;
    // A client that went away is no error worth a trap: writing just stops.
    written = wasi_io_streams_method_output_stream_blocking_write_and_flush(
        wasi_io_streams_borrow_output_stream(stream), &chunk, &error);
    if (!written) wasi_io_streams_stream_error_free(&error);
  }
  wasi_io_streams_output_stream_drop_own(stream);
  if (written) {
    wasi_http_types_error_code_t error;
    if (!wasi_http_types_static_outgoing_body_finish(body, NULL, &error))
      wasi_http_types_error_code_free(&error);
  } else {
    wasi_http_types_outgoing_body_drop_own(body);
  }
}

void exports_wasi_http_incoming_handler_handle(
    exports_wasi_http_incoming_handler_own_incoming_request_t incoming,
    exports_wasi_http_incoming_handler_own_response_outparam_t out) {
  wasi_http_types_borrow_incoming_request_t borrowed =
      wasi_http_types_borrow_incoming_request(incoming);
  wasi_http_types_method_t method;
  wasi_http_types_method_incoming_request_method(borrowed, &method);
  handler_string_t path_with_query;
  if (!wasi_http_types_method_incoming_request_path_with_query(borrowed, &path_with_query))
    handler_string_dup(&path_with_query, "/");
  json_buffer body = {0};
  bool too_large = false;
  bool readable = read_body(borrowed, &body, &too_large);

  response response;
  if (!readable) {
    response = too_large ? text_response(413, "request body too large\n")
                         : text_response(400, "could not read the request body\n");
  } else {
    const char *path = (const char *)path_with_query.ptr;
    const char *query = memchr(path, '?', path_with_query.len);
    request request = {
        .method = method.tag == WASI_HTTP_TYPES_METHOD_OTHER
                      ? (json_text){(const char *)method.val.other.ptr, method.val.other.len}
                      : (json_text){METHODS[method.tag], strlen(METHODS[method.tag])},
        .path = {path, query ? (size_t)(query - path) : path_with_query.len},
        .body = {body.ptr, body.len},
    };
    response = handle(&request);
  }
  send(&response, out);
  free(response.body.ptr);
  free(body.ptr);
  handler_string_free(&path_with_query);
  wasi_http_types_method_free(&method);
  wasi_http_types_incoming_request_drop_own(incoming);
}
