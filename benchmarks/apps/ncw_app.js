// The same reference app on @jambonz/node-client-ws 0.2.x, run by bench_server.py.
// Each /hook is answered with one say built from the hook's payload (its digits).
// Listens on 127.0.0.1 (port chosen by the OS), prints the port on one stdout
// line, then serves until SIGTERM or SIGINT.
'use strict';

const http = require('http');
const { createEndpoint } = require('@jambonz/node-client-ws');

const server = http.createServer();
const makeService = createEndpoint({ server });
const svc = makeService({ path: '/bench' });

svc.on('session:new', (session) => {
  session.on('/hook', (evt) => {
    session.say({ text: `You pressed ${evt.digits}` }).reply();
  });
  session.gather({ input: ['digits'], actionHook: '/hook' }).send();
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});

const stop = () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
