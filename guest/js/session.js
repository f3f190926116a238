// What the JavaScript handlers share: JSON responses and the HTTP status
// for each `edge:session` error, the same as the Rust guest SDK's.
//
// A session call that fails throws an Error whose `payload` is the WIT
// `error` variant: `{ tag: 'not-found' }`, `{ tag: 'invalid-argument', val: why }`, ….

const STATUS = {
  'not-found': 404,
  conflict: 409,
  'invalid-argument': 400,
  'too-large': 413,
  'access-denied': 403,
  unavailable: 503,
  internal: 500,
};

const MESSAGE = {
  'not-found': () => 'session not found',
  conflict: () => 'session changed since it was read',
  'invalid-argument': (why) => `invalid argument: ${why}`,
  'too-large': () => 'session too large',
  'access-denied': () => 'this route has no session access',
  unavailable: (why) => `session store unavailable: ${why}`,
  internal: (why) => `session host failure: ${why}`,
};

/** The `edge:session` error a session call threw, or undefined for any other exception. */
export function sessionError(thrown) {
  const payload = thrown?.payload;
  return payload && payload.tag in STATUS ? payload : undefined;
}

/** An `application/json` response. */
export function json(status, value) {
  return new Response(JSON.stringify(value), {
    status,
    headers: { 'content-type': 'application/json' },
  });
}

/**
 * The response for an exception: a session error becomes its status with
 * `{"error": message}`; anything else is a bug, rethrown (the host answers 500).
 */
export function failure(thrown) {
  const error = sessionError(thrown);
  if (error === undefined) throw thrown;
  return json(STATUS[error.tag], { error: MESSAGE[error.tag](error.val) });
}
