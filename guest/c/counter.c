// Session counter: counts each visitor's page loads, like guest/counter.
//
// `GET` anywhere under the route. The first visit starts a session (the
// host sets its cookie); each later visit increments the `count` field
// atomically, so concurrent tabs never lose a visit.
#include "guest.h"

static response count_response(int64_t count) {
  json_buffer body = {0};
  json_raw(&body, "{\"count\":", 9);
  json_integer(&body, count);
  json_raw(&body, "}", 1);
  return json_response(200, body);
}

response handle(const request *request) {
  if (!json_text_is(request->method, "GET")) {
    response refusal = text_response(405, "use GET\n");
    add_header(&refusal, "allow", "GET");
    return refusal;
  }
  edge_session_current_option_session_t session;
  edge_session_sessions_error_t error;
  if (!edge_session_current_load(&session, &error)) return session_failure(&error);
  if (session.is_some) {
    handler_string_t field;
    handler_string_set(&field, "count");
    int64_t count;
    bool counted = edge_session_sessions_incr_field(&session.val.id, &field, 1, &count, &error);
    edge_session_current_option_session_free(&session);
    if (counted) return count_response(count);
    // Expired between the two calls: start afresh below.
    if (error.tag != EDGE_SESSION_SESSIONS_ERROR_NOT_FOUND) return session_failure(&error);
  }
  handler_string_t data;
  handler_string_set(&data, "{\"count\":1}");
  edge_session_current_session_t started;
  if (!edge_session_current_start(&data, &started, &error)) return session_failure(&error);
  edge_session_current_session_free(&started);
  return count_response(1);
}
