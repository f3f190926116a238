// Login and shopping cart, like guest/cart: a session per logged-in user.
//
// Routes, relative to the route prefix (e.g. `/shop`):
// - `POST /login` `{"user":"ada"}`: starts a session (the host deletes any
//   earlier session of this client: a login never reuses an id);
// - `GET /cart`: the user and the cart;
// - `POST /cart/items` `{"sku":"apple","qty":2}`: adds to an item;
// - `DELETE /cart/items/{sku}`: removes an item;
// - `POST /logout`: ends the session (deleted, cookie removed).
//
// Each cart item is its own session field (`cart.<sku>`), updated with
// atomic field operations, so two tabs adding items at once never
// overwrite each other's cart.
#include <stdlib.h>
#include <string.h>

#include "guest.h"

#define ITEM_PREFIX "cart."
#define ITEM_PATH "/cart/items/"
#define MAX_QTY 1000
#define TEXT(number) #number
#define NUMBER_TEXT(macro) TEXT(macro)
#define NAME_RULE "1 to 64 characters of a-z A-Z 0-9 - _"
#define LOGIN_SHAPE "expected {\"user\": \"name\"}"
#define ITEM_SHAPE "expected {\"sku\": \"name\", \"qty\": 1}"

static bool ends_with(json_text text, const char *end) {
  size_t len = strlen(end);
  return text.len >= len && memcmp(text.ptr + text.len - len, end, len) == 0;
}

// Where the last `needle` in `text` ends, or NULL.
static const char *after_last(json_text text, const char *needle) {
  size_t len = strlen(needle);
  for (size_t at = text.len; at >= len; at--)
    if (memcmp(text.ptr + at - len, needle, len) == 0) return text.ptr + at;
  return NULL;
}

static bool valid_name(json_text name) {
  if (name.len < 1 || name.len > 64) return false;
  for (size_t i = 0; i < name.len; i++) {
    char c = name.ptr[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '_'))
      return false;
  }
  return true;
}

static response log_in_first(void) { return error_response(401, "log in first"); }

// The response for a failed session call: a session that is gone is as
// good as never logged in.
static response failure(edge_session_sessions_error_t *error) {
  if (error->tag == EDGE_SESSION_SESSIONS_ERROR_NOT_FOUND) return log_in_first();
  return session_failure(error);
}

// Loads the caller's session into `session`; otherwise sets `refusal`.
static bool logged_in(edge_session_current_session_t *session, response *refusal) {
  edge_session_current_option_session_t loaded;
  edge_session_sessions_error_t error;
  if (!edge_session_current_load(&loaded, &error)) {
    *refusal = failure(&error);
    return false;
  }
  if (!loaded.is_some) {
    *refusal = log_in_first();
    return false;
  }
  *session = loaded.val;
  return true;
}

// The raw values of the members a request body names (absent: len 0).
typedef struct {
  const char *names[2];
  json_text values[2];
} wanted;

static bool pick(json_text key, json_text value, void *context) {
  wanted *fields = context;
  for (size_t i = 0; i < 2; i++)
    if (fields->names[i] && json_text_is(key, fields->names[i])) fields->values[i] = value;
  return true;
}

// Parses `body` as a JSON object into `fields`; otherwise sets a 400 that
// says what `shape` was expected.
static bool parse_body(json_text body, wanted *fields, const char *shape, response *refusal) {
  const char *why = NULL;
  if (json_object_members(body, pick, fields, &why)) return true;
  json_buffer message = {0};
  json_raw(&message, shape, strlen(shape));
  json_raw(&message, ": ", 2);
  json_raw(&message, why, strlen(why));
  *refusal = error_response(400, message.ptr);
  free(message.ptr);
  return false;
}

static response login(json_text body) {
  wanted fields = {{"user", NULL}, {{0}}};
  response refusal;
  if (!parse_body(body, &fields, LOGIN_SHAPE, &refusal)) return refusal;
  char *user = json_string(fields.values[0]);
  json_text name = {user, user ? strlen(user) : 0};
  if (!user || !valid_name(name)) {
    free(user);
    return error_response(400, "user: " NAME_RULE);
  }
  // A valid name needs no escaping.
  json_buffer data = {0};
  json_raw(&data, "{\"user\":\"", 9);
  json_raw(&data, name.ptr, name.len);
  json_raw(&data, "\"}", 2);
  free(user);
  handler_string_t argument = wit_string((json_text){data.ptr, data.len});
  edge_session_current_session_t session;
  edge_session_sessions_error_t error;
  if (!edge_session_current_start(&argument, &session, &error)) {
    free(data.ptr);
    return failure(&error);
  }
  edge_session_current_session_free(&session);
  return json_response(200, data);
}

static response logout(void) {
  bool ended;
  edge_session_sessions_error_t error;
  if (!edge_session_current_end(&ended, &error)) return failure(&error);
  if (!ended) return log_in_first();
  json_buffer body = {0};
  json_raw(&body, "{\"logged_out\":true}", 19);
  return json_response(200, body);
}

// Collects the user and the `cart.<sku>` members of the session data.
typedef struct {
  json_text user;
  json_buffer items;
} cart;

static bool collect(json_text key, json_text value, void *context) {
  cart *cart = context;
  size_t prefix = strlen(ITEM_PREFIX);
  if (json_text_is(key, "user")) {
    cart->user = value;
  } else if (key.len >= prefix && memcmp(key.ptr, ITEM_PREFIX, prefix) == 0) {
    json_raw(&cart->items, cart->items.len > 1 ? "," : "", cart->items.len > 1);
    json_quote(&cart->items, key.ptr + prefix, key.len - prefix);
    json_raw(&cart->items, ":", 1);
    json_raw(&cart->items, value.ptr, value.len);
  }
  return true;
}

static response show_cart(void) {
  edge_session_current_session_t session;
  response refusal;
  if (!logged_in(&session, &refusal)) return refusal;
  cart cart = {{"null", 4}, {0}};
  json_raw(&cart.items, "{", 1);
  json_text data = {(const char *)session.data.ptr, session.data.len};
  const char *why = NULL;
  if (!json_object_members(data, collect, &cart, &why)) {
    // The host only ever stores JSON objects.
    free(cart.items.ptr);
    edge_session_current_session_free(&session);
    return error_response(500, "session data is not a JSON object");
  }
  json_buffer body = {0};
  json_raw(&body, "{\"user\":", 8);
  json_raw(&body, cart.user.ptr, cart.user.len);
  json_raw(&body, ",\"items\":", 9);
  json_raw(&body, cart.items.ptr, cart.items.len);
  json_raw(&body, "}}", 2);
  free(cart.items.ptr);
  edge_session_current_session_free(&session);
  return json_response(200, body);
}

// `cart.<sku>`, the session field of an item.
static json_buffer item_field(json_text sku) {
  json_buffer field = {0};
  json_raw(&field, ITEM_PREFIX, strlen(ITEM_PREFIX));
  json_raw(&field, sku.ptr, sku.len);
  return field;
}

// Reads `{"sku": "name", "qty": 1}` into `sku` (malloc'd) and `qty`;
// otherwise sets a 400 that says why.
static bool read_item(json_text body, char **sku, int64_t *qty, response *refusal) {
  wanted fields = {{"sku", "qty"}, {{0}}};
  if (!parse_body(body, &fields, ITEM_SHAPE, refusal)) return false;
  if (!json_int(fields.values[1], qty)) {
    *refusal = error_response(400, ITEM_SHAPE ": qty must be an integer");
    return false;
  }
  *sku = json_string(fields.values[0]);
  if (!*sku || !valid_name((json_text){*sku, strlen(*sku)})) {
    free(*sku);
    *refusal = error_response(400, "sku: " NAME_RULE);
    return false;
  }
  if (*qty < 1 || *qty > MAX_QTY) {
    free(*sku);
    *refusal = error_response(400, "qty: between 1 and " NUMBER_TEXT(MAX_QTY));
    return false;
  }
  return true;
}

static response add_item(json_text body) {
  edge_session_current_session_t session;
  response outcome;
  if (!logged_in(&session, &outcome)) return outcome;
  char *sku;
  int64_t qty;
  if (!read_item(body, &sku, &qty, &outcome)) {
    edge_session_current_session_free(&session);
    return outcome;
  }
  json_text name = {sku, strlen(sku)};
  json_buffer field = item_field(name);
  handler_string_t field_name = wit_string((json_text){field.ptr, field.len});
  int64_t total;
  edge_session_sessions_error_t error;
  if (edge_session_sessions_incr_field(&session.id, &field_name, qty, &total, &error)) {
    // A valid name needs no escaping.
    json_buffer reply = {0};
    json_raw(&reply, "{\"sku\":\"", 8);
    json_raw(&reply, name.ptr, name.len);
    json_raw(&reply, "\",\"qty\":", 8);
    json_integer(&reply, total);
    json_raw(&reply, "}", 1);
    outcome = json_response(200, reply);
  } else {
    outcome = failure(&error);
  }
  free(field.ptr);
  free(sku);
  edge_session_current_session_free(&session);
  return outcome;
}

static response remove_item(json_text sku) {
  edge_session_current_session_t session;
  response outcome;
  if (!logged_in(&session, &outcome)) return outcome;
  if (!valid_name(sku)) {
    edge_session_current_session_free(&session);
    return error_response(400, "sku: " NAME_RULE);
  }
  json_buffer field = item_field(sku);
  handler_string_t field_name = wit_string((json_text){field.ptr, field.len});
  bool removed;
  edge_session_sessions_error_t error;
  if (!edge_session_sessions_remove_field(&session.id, &field_name, &removed, &error)) {
    outcome = failure(&error);
  } else if (!removed) {
    outcome = error_response(404, "no such item in the cart");
  } else {
    json_buffer body = {0};
    json_raw(&body, "{\"removed\":\"", 12);
    json_raw(&body, sku.ptr, sku.len);
    json_raw(&body, "\"}", 2);
    outcome = json_response(200, body);
  }
  free(field.ptr);
  edge_session_current_session_free(&session);
  return outcome;
}

response handle(const request *request) {
  // Dispatch on the end of the path, so any route prefix works.
  json_text path = request->path;
  const char *sku = after_last(path, ITEM_PATH);
  if (json_text_is(request->method, "DELETE") && sku)
    return remove_item((json_text){sku, (size_t)(path.ptr + path.len - sku)});
  if (json_text_is(request->method, "POST") && ends_with(path, "/login"))
    return login(request->body);
  if (json_text_is(request->method, "POST") && ends_with(path, "/logout")) return logout();
  if (json_text_is(request->method, "GET") && ends_with(path, "/cart")) return show_cart();
  if (json_text_is(request->method, "POST") && ends_with(path, "/cart/items"))
    return add_item(request->body);
  return error_response(404, "no such page");
}
