// Session counter: counts each visitor's page loads, like guest/counter.
//
// `GET` anywhere under the route. The first visit starts a session (the
// host sets its cookie); each later visit increments the `count` field
// atomically, so concurrent tabs never lose a visit.

import { load, start } from 'edge:session/current@0.1.0';
import { incrField } from 'edge:session/sessions@0.1.0';
import { failure, json, sessionError } from './session.js';

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));

function handle(request) {
  if (request.method !== 'GET') {
    return new Response('use GET\n', {
      status: 405,
      headers: { allow: 'GET', 'content-type': 'text/plain; charset=utf-8' },
    });
  }
  try {
    return json(200, { count: countVisit() });
  } catch (thrown) {
    return failure(thrown);
  }
}

function countVisit() {
  const session = load();
  if (session !== undefined) {
    try {
      // s64 values are BigInts in JavaScript.
      return Number(incrField(session.id, 'count', 1n));
    } catch (thrown) {
      // Expired between the two calls: start afresh below.
      if (sessionError(thrown)?.tag !== 'not-found') throw thrown;
    }
  }
  start(JSON.stringify({ count: 1 }));
  return 1;
}
