'use strict';
/*
 * node `ws` 8 peer for scripts/bench.sh.
 *
 * usage: node ws_server.js [PORT]
 *   PORT  listening port on 127.0.0.1 (or env PORT; 0 = any free port)
 * Prints "listening PORT" once listening, and writes PORT to $PORT_FILE when that is set.
 *
 * Protocol (the same as uws_server.js):
 *   /echo      every message is sent back
 *   any other  "sub:TOPIC" joins TOPIC (answer "ok:TOPIC"); "pub:TOPIC:PAYLOAD" sends PAYLOAD
 *              to every member of TOPIC (ws has no pub/sub: a Set per topic, the loop of ws's
 *              own broadcast example); anything else is ignored
 */
const fs = require('fs');
const http = require('http');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error('usage: node ws_server.js [PORT]');
    process.exit(2);
}

const SUB = Buffer.from('sub:');
const PUB = Buffer.from('pub:');
const COLON = 0x3a;
const topics = new Map(); /* topic -> Set of sockets */

const server = http.createServer((req, res) => {
    res.writeHead(426, { 'Content-Type': 'text/plain' });
    res.end('WebSocket only\n');
});
const wss = new WebSocketServer({
    server,
    perMessageDeflate: false,
    maxPayload: 16 * 1024 * 1024,
    clientTracking: false,
});

function onPubSub(ws, joined, data, isBinary) {
    if (data.length > 4 && data.compare(SUB, 0, 4, 0, 4) === 0) {
        const topic = data.toString('latin1', 4);
        let set = topics.get(topic);
        if (!set) {
            set = new Set();
            topics.set(topic, set);
        }
        set.add(ws);
        joined.add(topic);
        ws.send(`ok:${topic}`);
    } else if (data.length > 4 && data.compare(PUB, 0, 4, 0, 4) === 0) {
        const colon = data.indexOf(COLON, 4);
        if (colon < 0)
            return;
        const set = topics.get(data.toString('latin1', 4, colon));
        if (!set)
            return;
        const payload = data.subarray(colon + 1);
        for (const client of set)
            client.send(payload, { binary: isBinary });
    }
}

wss.on('connection', (ws, req) => {
    if (req.url === '/echo') {
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
        return;
    }
    const joined = new Set();
    ws.on('message', (data, isBinary) => onPubSub(ws, joined, data, isBinary));
    ws.on('close', () => {
        for (const topic of joined) {
            const set = topics.get(topic);
            if (set && set.delete(ws) && set.size === 0)
                topics.delete(topic);
        }
    });
});

server.listen(port, '127.0.0.1', 1024, () => {
    const bound = server.address().port;
    if (process.env.PORT_FILE)
        fs.writeFileSync(process.env.PORT_FILE, `${bound}\n`);
    console.log(`listening ${bound} (ws)`);
});
