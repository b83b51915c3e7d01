'use strict';
/*
 * uWebSockets.js peer for scripts/bench.sh (npm @trufflesuite/uws-js-unofficial, native build).
 *
 * usage: node uws_server.js [PORT [direct|deferred]]
 *   PORT       listening port on 127.0.0.1 (or env PORT; 0 = any free port)
 *   direct     app.publish() inside the publisher's message handler (default; env UWS_PUBLISH)
 *   deferred   the same call deferred with setImmediate(), outside the handler, where uWS
 *              queues publishes and corks them per subscriber at the end of the loop iteration
 * Prints "listening PORT" once listening, and writes PORT to $PORT_FILE when that is set.
 *
 * Protocol (text or binary, as sent):
 *   /echo      every message is sent back
 *   any other  "sub:TOPIC" subscribes (answer "ok:TOPIC"); "pub:TOPIC:PAYLOAD" publishes
 *              PAYLOAD to every subscriber of TOPIC; anything else is ignored
 */
const fs = require('fs');
const path = require('path');

/* The package silently falls back to a JavaScript emulation when its native binary does not
 * load; a benchmark must not measure that, so load the binary itself. */
let uWS;
try {
    const dir = path.dirname(require.resolve('@trufflesuite/uws-js-unofficial/package.json'));
    uWS = require(path.join(dir, 'binaries',
        `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`));
} catch (e) {
    console.error(`uws_server: cannot load the native uWS binary (run bench/peers/install.sh): ${e.message}`);
    process.exit(1);
}

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const mode = process.argv[3] ?? process.env.UWS_PUBLISH ?? 'direct';
if (!Number.isInteger(port) || port < 0 || port > 65535 || !['direct', 'deferred'].includes(mode)) {
    console.error('usage: node uws_server.js [PORT [direct|deferred]]');
    process.exit(2);
}

const SUB = Buffer.from('sub:');
const PUB = Buffer.from('pub:');
const COLON = 0x3a;

/* Large enough that a bench subscriber that falls behind is measured, not dropped. */
const common = {
    compression: uWS.DISABLED,
    maxPayloadLength: 16 * 1024 * 1024,
    maxBackpressure: 64 * 1024 * 1024,
    idleTimeout: 0,
};

const app = uWS.App();

app.ws('/echo', {
    ...common,
    message: (ws, message, isBinary) => {
        ws.send(message, isBinary);
    },
});

app.ws('/*', {
    ...common,
    message: (ws, message, isBinary) => {
        /* A view of uWS's buffer, valid only during this call. */
        const b = Buffer.from(message);
        if (b.length > 4 && b.compare(SUB, 0, 4, 0, 4) === 0) {
            const topic = b.toString('latin1', 4);
            ws.subscribe(topic);
            ws.send(`ok:${topic}`);
        } else if (b.length > 4 && b.compare(PUB, 0, 4, 0, 4) === 0) {
            const colon = b.indexOf(COLON, 4);
            if (colon < 0)
                return;
            const topic = b.toString('latin1', 4, colon);
            if (mode === 'direct') {
                app.publish(topic, b.subarray(colon + 1), isBinary);
            } else {
                const payload = Buffer.from(b.subarray(colon + 1)); /* a copy outlives the call */
                setImmediate(() => app.publish(topic, payload, isBinary));
            }
        }
    },
});

app.listen('127.0.0.1', port, (token) => {
    if (!token) {
        console.error(`uws_server: cannot listen on 127.0.0.1:${port}`);
        process.exit(1);
    }
    const bound = uWS.us_socket_local_port(token);
    if (process.env.PORT_FILE)
        fs.writeFileSync(process.env.PORT_FILE, `${bound}\n`);
    console.log(`listening ${bound} (uWebSockets.js, publish ${mode})`);
});
