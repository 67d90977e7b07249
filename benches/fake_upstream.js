// The gateway bench's fake Anthropic upstream in node (BENCH_UPSTREAM=node): the same
// answers as the bench's own hyper upstream (a JSON message, or an SSE stream written one
// event at a time, with usage), for comparing with the node-upstream figures.
// Prints its port on stdout, then serves until killed.
'use strict';
const http = require('http');

const [INPUT, OUTPUT, CACHE_READ, CACHE_WRITE] = process.argv.slice(2, 6).map(Number);
const API_KEY = process.argv[6];
const DELTAS = Number(process.argv[7]);
let next = 1;

function jsonReply(id) {
  return JSON.stringify({
    id, type: 'message', role: 'assistant', model: 'claude-bench-4',
    content: [{ type: 'text', text: 'The function returns early when the lease has ended. '.repeat(12) }],
    stop_reason: 'end_turn', stop_sequence: null,
    usage: {
      input_tokens: INPUT, cache_creation_input_tokens: CACHE_WRITE,
      cache_read_input_tokens: CACHE_READ, output_tokens: OUTPUT, service_tier: 'standard',
    },
  });
}

function sseEvents(id) {
  const ev = (name, data) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
  const out = [ev('message_start', { type: 'message_start', message: {
    id, type: 'message', role: 'assistant', model: 'claude-bench-4', content: [],
    stop_reason: null, stop_sequence: null, usage: { input_tokens: INPUT,
      cache_creation_input_tokens: CACHE_WRITE, cache_read_input_tokens: CACHE_READ,
      output_tokens: 1 } } }),
  ev('content_block_start', { type: 'content_block_start', index: 0,
    content_block: { type: 'text', text: '' } }),
  'event: ping\ndata: {"type": "ping"}\n\n'];
  for (let i = 0; i < DELTAS; i++) {
    out.push(ev('content_block_delta', { type: 'content_block_delta', index: 0,
      delta: { type: 'text_delta', text: `returns early (${i}) when the lease ended; ` } }));
  }
  out.push(ev('content_block_stop', { type: 'content_block_stop', index: 0 }));
  out.push(ev('message_delta', { type: 'message_delta',
    delta: { stop_reason: 'end_turn', stop_sequence: null },
    usage: { input_tokens: INPUT, cache_creation_input_tokens: CACHE_WRITE,
      cache_read_input_tokens: CACHE_READ, output_tokens: OUTPUT } }));
  out.push(ev('message_stop', { type: 'message_stop' }));
  return out;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.headers['x-api-key'] !== API_KEY) {
      res.writeHead(401);
      res.end();
      return;
    }
    const n = next++;
    const id = `msg_bench_${String(n).padStart(8, '0')}`;
    const stream = Buffer.concat(chunks).includes('"stream":true');
    if (stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'request-id': `req_bench_${n}` });
      for (const e of sseEvents(id)) res.write(e);
      res.end();
    } else {
      const body = jsonReply(id);
      res.writeHead(200, {
        'content-type': 'application/json', 'content-length': Buffer.byteLength(body),
        'request-id': `req_bench_${n}`,
      });
      res.end(body);
    }
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
