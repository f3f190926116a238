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

import { end, load, start } from 'edge:session/current@0.1.0';
import { incrField, removeField } from 'edge:session/sessions@0.1.0';
import { failure, json, sessionError } from './session.js';

const ITEM_PREFIX = 'cart.';
const MAX_QTY = 1000;
const NAME_RULE = '1 to 64 characters of a-z A-Z 0-9 - _';

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));

/** A response to send at once, thrown from anywhere in a handler. */
class Refusal {
  constructor(status, message) {
    this.response = json(status, { error: message });
  }
}

async function handle(request) {
  // Dispatch on the end of the path, so any route prefix works.
  const path = new URL(request.url).pathname;
  const itemAt = path.lastIndexOf('/cart/items/');
  try {
    if (request.method === 'DELETE' && itemAt >= 0) {
      return removeItem(path.slice(itemAt + '/cart/items/'.length));
    }
    if (request.method === 'POST' && path.endsWith('/login')) return login(await request.text());
    if (request.method === 'POST' && path.endsWith('/logout')) return logout();
    if (request.method === 'GET' && path.endsWith('/cart')) return showCart();
    if (request.method === 'POST' && path.endsWith('/cart/items')) {
      return addItem(await request.text());
    }
    return json(404, { error: 'no such page' });
  } catch (thrown) {
    if (thrown instanceof Refusal) return thrown.response;
    // The session is gone: as good as never logged in.
    if (sessionError(thrown)?.tag === 'not-found') return json(401, { error: 'log in first' });
    return failure(thrown);
  }
}

/** The caller's session with its data parsed, or a 401. */
function loggedIn() {
  const session = load();
  if (session === undefined) throw new Refusal(401, 'log in first');
  return { id: session.id, data: JSON.parse(session.data) };
}

function validName(name) {
  return typeof name === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(name);
}

/** The body as a JSON object, or a 400 saying what was expected. */
function parseObject(body, expected) {
  let value;
  try {
    value = JSON.parse(body);
  } catch (error) {
    throw new Refusal(400, `expected ${expected}: ${error.message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Refusal(400, `expected ${expected}: not an object`);
  }
  return value;
}

function login(body) {
  const { user } = parseObject(body, '{"user": "name"}');
  if (!validName(user)) throw new Refusal(400, `user: ${NAME_RULE}`);
  start(JSON.stringify({ user }));
  return json(200, { user });
}

function logout() {
  if (!end()) throw new Refusal(401, 'log in first');
  return json(200, { logged_out: true });
}

function showCart() {
  const { data } = loggedIn();
  const items = {};
  for (const [name, qty] of Object.entries(data)) {
    if (name.startsWith(ITEM_PREFIX)) items[name.slice(ITEM_PREFIX.length)] = qty;
  }
  return json(200, { user: data.user ?? null, items });
}

function addItem(body) {
  const session = loggedIn();
  const { sku, qty } = parseObject(body, '{"sku": "name", "qty": 1}');
  if (!Number.isInteger(qty)) {
    throw new Refusal(400, 'expected {"sku": "name", "qty": 1}: qty must be an integer');
  }
  if (!validName(sku)) throw new Refusal(400, `sku: ${NAME_RULE}`);
  if (qty < 1 || qty > MAX_QTY) throw new Refusal(400, `qty: between 1 and ${MAX_QTY}`);
  const total = incrField(session.id, ITEM_PREFIX + sku, BigInt(qty));
  return json(200, { sku, qty: Number(total) });
}

function removeItem(sku) {
  const session = loggedIn();
  if (!validName(sku)) throw new Refusal(400, `sku: ${NAME_RULE}`);
  if (!removeField(session.id, ITEM_PREFIX + sku)) {
    throw new Refusal(404, 'no such item in the cart');
  }
  return json(200, { removed: sku });
}
