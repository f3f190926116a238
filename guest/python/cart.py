"""Login and shopping cart, like guest/cart: a session per logged-in user.

Routes, relative to the route prefix (e.g. `/shop`):
- `POST /login` `{"user":"ada"}`: starts a session (the host deletes any
  earlier session of this client: a login never reuses an id);
- `GET /cart`: the user and the cart;
- `POST /cart/items` `{"sku":"apple","qty":2}`: adds to an item;
- `DELETE /cart/items/{sku}`: removes an item;
- `POST /logout`: ends the session (deleted, cookie removed).

Each cart item is its own session field (`cart.<sku>`), updated with atomic
field operations, so two tabs adding items at once never overwrite each
other's cart.
"""

import json
import re
from typing import Any

from componentize_py_types import Err
from session_http import Refusal, Request, Response, json_response, serve, session_failure
from wit_world import exports
from wit_world.imports import current, sessions

ITEM_PREFIX = "cart."
ITEM_PATH = "/cart/items/"
MAX_QTY = 1000
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME_RULE = "1 to 64 characters of a-z A-Z 0-9 - _"


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        serve(handle, request, response_out)


def handle(request: Request) -> Response:
    # Dispatch on the end of the path, so any route prefix works.
    method, path = request.method, request.path
    try:
        if method == "DELETE" and ITEM_PATH in path:
            return remove_item(path.rsplit(ITEM_PATH, 1)[1])
        if method == "POST" and path.endswith("/login"):
            return login(request.body)
        if method == "POST" and path.endswith("/logout"):
            return logout()
        if method == "GET" and path.endswith("/cart"):
            return show_cart()
        if method == "POST" and path.endswith("/cart/items"):
            return add_item(request.body)
        return json_response(404, {"error": "no such page"})
    except Err as error:
        # The session is gone: as good as never logged in.
        if isinstance(error.value, sessions.Error_NotFound):
            return json_response(401, {"error": "log in first"})
        return session_failure(error.value)


def logged_in() -> tuple[str, dict[str, Any]]:
    """The caller's session id and data, or a 401."""
    session = current.load()
    if session is None:
        raise Refusal(401, "log in first")
    return session.id, json.loads(session.data)


def valid_name(name: Any) -> bool:
    return isinstance(name, str) and NAME.fullmatch(name) is not None


def parse_object(body: bytes, expected: str) -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying what was expected."""
    try:
        value = json.loads(body)
    except ValueError as error:
        raise Refusal(400, f"expected {expected}: {error}")
    if not isinstance(value, dict):
        raise Refusal(400, f"expected {expected}: not an object")
    return value


def login(body: bytes) -> Response:
    user = parse_object(body, '{"user": "name"}').get("user")
    if not valid_name(user):
        raise Refusal(400, f"user: {NAME_RULE}")
    current.start(json.dumps({"user": user}))
    return json_response(200, {"user": user})


def logout() -> Response:
    if not current.end():
        raise Refusal(401, "log in first")
    return json_response(200, {"logged_out": True})


def show_cart() -> Response:
    _, data = logged_in()
    items = {
        name.removeprefix(ITEM_PREFIX): qty
        for name, qty in data.items()
        if name.startswith(ITEM_PREFIX)
    }
    return json_response(200, {"user": data.get("user"), "items": items})


def add_item(body: bytes) -> Response:
    session_id, _ = logged_in()
    item = parse_object(body, '{"sku": "name", "qty": 1}')
    sku, qty = item.get("sku"), item.get("qty")
    # bool is an int in Python, but not a quantity.
    if not isinstance(qty, int) or isinstance(qty, bool):
        raise Refusal(400, 'expected {"sku": "name", "qty": 1}: qty must be an integer')
    if not valid_name(sku):
        raise Refusal(400, f"sku: {NAME_RULE}")
    if not 1 <= qty <= MAX_QTY:
        raise Refusal(400, f"qty: between 1 and {MAX_QTY}")
    total = sessions.incr_field(session_id, ITEM_PREFIX + sku, qty)
    return json_response(200, {"sku": sku, "qty": total})


def remove_item(sku: str) -> Response:
    session_id, _ = logged_in()
    if not valid_name(sku):
        raise Refusal(400, f"sku: {NAME_RULE}")
    if not sessions.remove_field(session_id, ITEM_PREFIX + sku):
        raise Refusal(404, "no such item in the cart")
    return json_response(200, {"removed": sku})
