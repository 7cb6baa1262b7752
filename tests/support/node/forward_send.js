// Sends records with the real fluent-logger (npm) over Fluent forward, then prints what happened.
// usage: node forward_send.js PORT MODE COUNT TAG [SHARED_KEY]
//   MODE: Message | PackedForward | CompressedPackedForward (every mode asks for chunk acks)
// prints one JSON line: {"acked": <emits whose callback saw no error>, "errors": [messages]}
'use strict';
const logger = require('fluent-logger');

const [port, mode, count, tag, sharedKey] = process.argv.slice(2);
const options = {
  host: '127.0.0.1', port: Number(port), timeout: 5.0, reconnectInterval: 200,
  eventMode: mode, requireAckResponse: true, ackResponseTimeout: 5000, flushInterval: 10,
  internalLogger: { info() {}, error() {} },
};
if (sharedKey) options.security = { clientHostname: 'test-client', sharedKey: sharedKey };
const sender = logger.createFluentSender('app', options);
const errors = [];
let acked = 0;
let pending = Number(count);
let finished = false;
const finish = () => {
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify({ acked, errors }) + '\n');
  sender.end();
  setTimeout(() => process.exit(0), 50);
};
const deadline = setTimeout(finish, 15000);
sender.on('error', (err) => {
  errors.push(String(err && err.message || err));
  if (err && err.name === 'HandshakeError') { clearTimeout(deadline); finish(); }  // it would retry forever
});
for (let i = 0; i < Number(count); i++) {
  const record = { traceId: `${tag}-trace-${i % 3}`, msg: `${tag}-${i}`, n: i };
  sender.emit(tag, record, (err) => {
    if (err) errors.push(String(err.message || err)); else acked++;
    if (--pending === 0) { clearTimeout(deadline); finish(); }
  });
}
