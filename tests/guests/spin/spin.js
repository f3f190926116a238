// A test guest in JavaScript that spins on the CPU at `/loop` until the
// host stops it, and answers "ok" anywhere else: the interpreter's loop
// must yield to other requests as compiled Rust does (tests/tests/fairness.rs).

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));

function handle(request) {
  if (new URL(request.url).pathname.endsWith('/loop')) {
    let n = 0;
    for (;;) n += 1;
  }
  return new Response('ok\n', { headers: { 'content-type': 'text/plain; charset=utf-8' } });
}
