#!/usr/bin/env node
// A second, independent test CSMS for the station: ocpp-rpc in strict mode, OCPP 1.6.
// Driven by tests/support/rpc_csms.py over stdin/stdout, one JSON object per line.
//
//   node server.js [PORT] [--boot-interval N] [--boot-status Accepted|Pending|Rejected]
//                  [--ping-interval-ms MS]   (ocpp-rpc's keep-alive pings; default 30000)
//
// Listens on 127.0.0.1:PORT (0 or absent: any free port).  The first stdout line is
// {"dir":"listening","port":N}.  Stations connect to ws://127.0.0.1:N/ocpp/<id>.
//
// stdout (every line one JSON object, "t" = ms since the epoch):
//   {"dir":"connect","identity":...}             a station connected (it becomes the current one)
//   {"dir":"disconnect","identity":...,"code":...,"reason":...}
//   {"dir":"in","identity":...,"id":...,"action":...,"payload":...}      a CALL from the station
//   {"dir":"out","identity":...,"id":...,"action":...,"payload":...}     our CALLRESULT to it
//   {"dir":"out_error","identity":...,"id":...,"action":...,"code":...,"message":...,
//    "deliberate":bool}                           our CALLERROR to it (deliberate: from failNext)
//   {"dir":"call","ref":n,"id":...,"action":...,"payload":...}           a CALL we sent
//   {"dir":"result","ref":n,"payload":...}  /  {"dir":"error","ref":n,"code":...,"message":...,
//    "callerror":bool}   (callerror false: ocpp-rpc failed the call itself, e.g. strict/timeout)
//   {"dir":"raw_out","text":...}  /  {"dir":"raw_in","text":...,"message":[...] or null}
//                                                a raw frame we sent / a frame ocpp-rpc did not
//                                                expect (the reply to a raw CALL, garbage)
//   {"dir":"wire_out"|"wire_in","identity":...,"text":...}   every frame on the socket
//   {"dir":"strict","identity":...,"outbound":bool,"isCall":bool,"action":...,"id":...,
//    "code":...,"message":...}                   ocpp-rpc strict mode rejected a message
//   {"dir":"bad","identity":...,"text":...,"message":...}   ocpp-rpc 'badMessage'
//   {"dir":"pong","identity":...,"rtt":ms}         the station answered a WebSocket ping
//   {"dir":"ack","ref":n} / {"dir":"cmd_error","ref":n,"message":...}   other commands
//
// stdin commands:
//   {"cmd":"call","ref":n,"action":"GetConfiguration","payload":{...},"timeout":10}
//   {"cmd":"raw","ref":n,"text":"..."}                 sent as is; replies come back as raw_in
//   {"cmd":"set","ref":n,"bootInterval":N,"bootStatus":"Accepted"}
//   {"cmd":"set","ref":n,"bootSequence":[["Rejected",1],["Accepted",2]]}
//       one BootNotification answer per boot, in turn; the last one stays for later boots
//   {"cmd":"set","ref":n,"failNext":{"action":"StartTransaction","code":"InternalError","message":""}}
//       answer the next CALL of that action with a CALLERROR (code: an ocpp-rpc error type)
//   {"cmd":"stop"}  (or EOF on stdin)                  closes everything and exits
// "identity" in call/raw picks a station; default: the one that connected last.
'use strict';

const readline = require('readline');
const { RPCServer, createRPCError } = require('ocpp-rpc');

const MSG_CALL = 2, MSG_CALLRESULT = 3, MSG_CALLERROR = 4;

function parseArgs(argv) {
    const opts = { port: 0, bootInterval: 300, bootStatus: 'Accepted', pingIntervalMs: 30000 };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === '--boot-interval') opts.bootInterval = Number(argv[++i]);
        else if (a === '--boot-status') opts.bootStatus = argv[++i];
        else if (a === '--ping-interval-ms') opts.pingIntervalMs = Number(argv[++i]);
        else if (/^\d+$/.test(a)) opts.port = Number(a);
        else throw new Error(`unknown argument ${a}`);
    }
    return opts;
}

const opts = parseArgs(process.argv.slice(2));
const clients = new Map();       // identity -> RPCServerClient
let current = null;              // the station that connected last
let nextTransactionId = 1;
let nextRef = 1;                 // for commands without a ref
const failNext = new Map();      // action -> [code, message]: answer its next CALL with a CALLERROR
let bootSequence = [];           // [[status, interval], ...] still to answer, before opts' values

function emit(obj) {
    process.stdout.write(JSON.stringify({ ...obj, t: Date.now() }) + '\n');
}

function parseFrame(text) {
    try {
        const msg = JSON.parse(text);
        return Array.isArray(msg) ? msg : null;
    } catch (e) {
        return null;
    }
}

const now = () => new Date().toISOString();

// Handlers for every CALL a station may send in OCPP 1.6 Core (+ the two status
// notifications).  Every response must be valid OCPP 1.6: strict mode checks it.
const handlers = {
    BootNotification: () => {
        if (bootSequence.length > 0) {
            [opts.bootStatus, opts.bootInterval] = bootSequence.shift();
        }
        return { status: opts.bootStatus, currentTime: now(), interval: opts.bootInterval };
    },
    Heartbeat: () => ({ currentTime: now() }),
    StatusNotification: () => ({}),
    Authorize: () => ({ idTagInfo: { status: 'Accepted' } }),
    StartTransaction: () => ({ transactionId: nextTransactionId++, idTagInfo: { status: 'Accepted' } }),
    StopTransaction: ({ params }) => (params && params.idTag !== undefined
        ? { idTagInfo: { status: 'Accepted' } } : {}),
    MeterValues: () => ({}),
    DataTransfer: () => ({ status: 'UnknownVendorId' }),
    DiagnosticsStatusNotification: () => ({}),
    FirmwareStatusNotification: () => ({}),
};

const server = new RPCServer({
    protocols: ['ocpp1.6'],
    strictMode: true,
    callTimeoutMs: 30000,
    pingIntervalMs: opts.pingIntervalMs,
});

server.auth((accept, reject, handshake) => {
    if (handshake.endpoint !== '/ocpp' || !handshake.identity) {
        reject(404, 'Unknown charge point');
        return;
    }
    accept({});
});

server.on('client', (client) => {
    const identity = client.identity;
    const ownCallIds = new Set();   // ids of CALLs ocpp-rpc itself sent (not raw)
    const pendingIn = new Map();    // id -> action of CALLs from the station being handled
    client.wireErrors = new Map();  // id of our CALL -> the CALLERROR frame the station sent
    const deliberate = new Set();   // ids of station CALLs failed on purpose (failNext)
    clients.set(identity, client);
    current = client;
    emit({ dir: 'connect', identity, protocol: client.protocol });

    client.on('call', ({ outbound, payload }) => {
        if (outbound) {
            ownCallIds.add(payload[1]);
        } else {
            pendingIn.set(payload[1], payload[2]);
            emit({ dir: 'in', identity, id: payload[1], action: payload[2], payload: payload[3] });
        }
    });
    client.on('response', ({ outbound, payload }) => {
        if (!outbound) {
            if (payload[0] === MSG_CALLERROR && ownCallIds.has(payload[1])) {
                client.wireErrors.set(payload[1], payload);
            }
            return;
        }
        const [type, id] = payload;
        const action = pendingIn.get(id) ?? null;
        pendingIn.delete(id);
        if (type === MSG_CALLRESULT) {
            emit({ dir: 'out', identity, id, action, payload: payload[2] });
        } else {
            emit({ dir: 'out_error', identity, id, action, code: payload[2], message: payload[3],
                   deliberate: deliberate.delete(id) });
        }
    });
    client.on('message', ({ message, outbound }) => {
        const text = message.toString();
        emit({ dir: outbound ? 'wire_out' : 'wire_in', identity, text });
        if (outbound) return;
        const msg = parseFrame(text);
        // Replies to raw frames: ocpp-rpc does not know their ids.  Replies to its own
        // CALLs are reported as result/error; CALLs from the station as "in".
        const isReply = msg && (msg[0] === MSG_CALLRESULT || msg[0] === MSG_CALLERROR);
        if (!msg || (isReply && !ownCallIds.has(msg[1])) || (!isReply && msg[0] !== MSG_CALL)) {
            emit({ dir: 'raw_in', identity, text, message: msg });
        }
    });
    client.on('strictValidationFailure', (ev) => {
        emit({
            dir: 'strict', identity, outbound: ev.outbound, isCall: ev.isCall, action: ev.method,
            id: ev.messageId, params: ev.params, result: ev.result,
            code: ev.error && ev.error.rpcErrorCode, message: ev.error && ev.error.message,
        });
    });
    client.on('ping', ({ rtt }) => emit({ dir: 'pong', identity, rtt }));
    client.on('badMessage', ({ buffer, error, response }) => {
        emit({ dir: 'bad', identity, text: buffer.toString(), message: error && error.message, response });
    });
    client.on('close', ({ code, reason }) => {
        if (clients.get(identity) === client) clients.delete(identity);
        if (current === client) current = null;
        emit({ dir: 'disconnect', identity, code, reason: String(reason ?? '') });
    });

    for (const [action, fn] of Object.entries(handlers)) {
        client.handle(action, (call) => {
            const failure = failNext.get(action);
            if (failure) {
                failNext.delete(action);
                deliberate.add(call.messageId);
                throw createRPCError(failure[0], failure[1]);
            }
            return fn(call);
        });
    }
    client.handle(({ method }) => {
        throw createRPCError('NotImplemented', `Unable to handle '${method}' calls`);
    });
});

function target(cmd) {
    const client = cmd.identity !== undefined ? clients.get(cmd.identity) : current;
    if (!client) {
        throw new Error(`station ${cmd.identity ?? '(current)'} is not connected `
            + `(connected: ${JSON.stringify([...clients.keys()])})`);
    }
    return client;
}

async function doCall(cmd, ref) {
    let client;
    try {
        client = target(cmd);
    } catch (err) {
        emit({ dir: 'error', ref, code: 'NotConnected', message: err.message });
        return;
    }
    const timeoutMs = Math.round((cmd.timeout ?? 10) * 1000);
    // ocpp-rpc picks the message id; it emits 'call' synchronously as it sends.  Calls
    // from Python come one at a time, so the next outbound CALL of this action is ours.
    let sentId = null;
    const listener = ({ outbound, payload }) => {
        if (outbound && payload[2] === cmd.action) {
            client.removeListener('call', listener);
            sentId = payload[1];
            emit({ dir: 'call', ref, id: payload[1], action: cmd.action, payload: payload[3] });
        }
    };
    client.on('call', listener);
    try {
        const result = await client.call(cmd.action, cmd.payload ?? {}, { callTimeoutMs: timeoutMs });
        emit({ dir: 'result', ref, action: cmd.action, payload: result });
    } catch (err) {
        // callerror: true when the station answered with a CALLERROR; code is then its
        // code as on the wire.  Otherwise ocpp-rpc failed the call itself (strict mode,
        // timeout, disconnect) and code is its error code or name.
        const frame = sentId !== null ? client.wireErrors.get(sentId) : undefined;
        emit({
            dir: 'error', ref, id: sentId, action: cmd.action, callerror: frame !== undefined,
            code: frame ? frame[2] : (err.rpcErrorCode ?? err.name ?? 'Error'),
            message: frame ? frame[3] : (err.message ?? String(err)),
            details: frame ? (frame[4] ?? null) : (err.details ?? null),
        });
    } finally {
        client.removeListener('call', listener);
        if (sentId !== null) client.wireErrors.delete(sentId);
    }
}

let stopping = false;
async function shutdown() {
    if (stopping) return;
    stopping = true;
    try {
        await server.close({ force: true });
    } catch (e) {
        // exiting anyway
    }
    process.exit(0);
}

function onCommand(line) {
    if (!line.trim()) return;
    let cmd;
    try {
        cmd = JSON.parse(line);
    } catch (err) {
        emit({ dir: 'cmd_error', ref: null, message: `not JSON: ${line}` });
        return;
    }
    const ref = cmd.ref ?? nextRef++;
    try {
        switch (cmd.cmd) {
            case 'call':
                doCall(cmd, ref);
                break;
            case 'raw': {
                const client = target(cmd);
                client.sendRaw(cmd.text);
                emit({ dir: 'raw_out', ref, identity: client.identity, text: cmd.text });
                emit({ dir: 'ack', ref });
                break;
            }
            case 'set':
                if (cmd.bootInterval !== undefined) opts.bootInterval = cmd.bootInterval;
                if (cmd.bootStatus !== undefined) opts.bootStatus = cmd.bootStatus;
                if (cmd.bootSequence !== undefined) bootSequence = cmd.bootSequence.map((x) => [x[0], x[1]]);
                if (cmd.failNext !== undefined) {
                    failNext.set(cmd.failNext.action, [cmd.failNext.code, cmd.failNext.message ?? '']);
                }
                emit({ dir: 'ack', ref });
                break;
            case 'stop':
                shutdown();
                break;
            default:
                throw new Error(`unknown command ${JSON.stringify(cmd.cmd)}`);
        }
    } catch (err) {
        emit({ dir: 'cmd_error', ref, message: err.message });
    }
}

async function main() {
    const http = await server.listen(opts.port, '127.0.0.1');
    emit({ dir: 'listening', port: http.address().port, ocppRpc: require('ocpp-rpc/package.json').version });
    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', onCommand);
    rl.on('close', shutdown);
}

process.on('SIGTERM', shutdown);
main().catch((err) => {
    process.stderr.write(`rpc_csms: ${err.stack || err}\n`);
    process.exit(1);
});
