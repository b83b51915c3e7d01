'use strict';
/*
 * socket.io 4 peer for scripts/bench.sh (WebSocket transport only, no long-polling).
 *
 * usage: node socketio_server.js [PORT]
 *   PORT  listening port on 127.0.0.1 (or env PORT; 0 = any free port)
 * Prints "listening PORT" once listening, and writes PORT to $PORT_FILE when that is set.
 *
 * Clients connect to ws://127.0.0.1:PORT/socket.io/?EIO=4&transport=websocket and speak
 * engine.io 4 / socket.io 5 frames: the server opens with '0{"sid":...,"pingInterval":...}',
 * the client joins the main namespace with "40" (answer '40{"sid":...}'), and must answer the
 * server's ping "2" with "3". Events (as '42[...]' frames):
 *   ["echo", X]          answered with ["echo", X]
 *   ["join", ROOM]       joins ROOM, answered with ["joined", ROOM]
 *   ["pub", ROOM, X]     every socket in ROOM gets ["msg", X] (io.to(ROOM).emit)
 */
const fs = require('fs');
const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error('usage: node socketio_server.js [PORT]');
    process.exit(2);
}

const server = http.createServer();
const io = new Server(server, {
    transports: ['websocket'],
    serveClient: false,
    perMessageDeflate: false,
    httpCompression: false,
    maxHttpBufferSize: 16 * 1024 * 1024,
});

io.on('connection', (socket) => {
    socket.on('echo', (x) => socket.emit('echo', x));
    socket.on('join', (room) => {
        socket.join(String(room));
        socket.emit('joined', room);
    });
    socket.on('pub', (room, x) => io.to(String(room)).emit('msg', x));
});

server.listen(port, '127.0.0.1', 1024, () => {
    const bound = server.address().port;
    if (process.env.PORT_FILE)
        fs.writeFileSync(process.env.PORT_FILE, `${bound}\n`);
    console.log(`listening ${bound} (socket.io)`);
});
