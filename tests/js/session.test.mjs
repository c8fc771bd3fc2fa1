// Session and MessageStream of wtframe/static/wtframe.js over an in-memory stand-in for the
// browser's WebTransport object, built from the WHATWG streams that Node provides.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const source = readFileSync(new URL("../../wtframe/static/wtframe.js", import.meta.url), "utf8");
const wt = await import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`);
const { connect, Session, MessageStream, FrameDecoder, MessageTooLargeError, encodeFrame } = wt;

const utf8 = (text) => new TextEncoder().encode(text);

function controlledReadable() {
  let controller;
  const readable = new ReadableStream({
    start(c) {
      controller = c;
    },
  });
  return { readable, controller };
}

// Write chunks then FIN, without blocking the caller: the writes complete as the other side reads.
function writeAll(writable, chunks) {
  const writer = writable.getWriter();
  const done = (async () => {
    for (const chunk of chunks) await writer.write(chunk);
    await writer.close();
  })();
  done.catch(() => {});
  return done;
}

async function readAllBytes(readable) {
  const chunks = [];
  for await (const chunk of readable) chunks.push(Buffer.from(chunk));
  return new Uint8Array(Buffer.concat(chunks));
}

class MemoryTransport {
  constructor(url, options) {
    this.url = url;
    this.options = options;
    this.ready = Promise.resolve();
    this.closed = new Promise((resolve) => {
      this._resolveClosed = resolve;
    });
    const toClient = controlledReadable();
    const toServer = new TransformStream();
    this.datagrams = {
      readable: toClient.readable,
      writable: toServer.writable,
      maxDatagramSize: 64,
    };
    this.serverDatagrams = { send: toClient.controller, received: toServer.readable.getReader() };
    const bidi = controlledReadable();
    const uni = controlledReadable();
    this.incomingBidirectionalStreams = bidi.readable;
    this.incomingUnidirectionalStreams = uni.readable;
    this.server = { bidi: bidi.controller, uni: uni.controller, streams: [] };
  }

  async createBidirectionalStream() {
    const up = new TransformStream();
    const down = new TransformStream();
    this.server.streams.push({ readable: up.readable, writable: down.writable });
    return { readable: down.readable, writable: up.writable };
  }

  serverOpenBidi() {
    const up = new TransformStream();
    const down = new TransformStream();
    this.server.bidi.enqueue({ readable: down.readable, writable: up.writable });
    return { readable: up.readable, writable: down.writable };
  }

  close(info) {
    this.closeInfo = info;
    this._resolveClosed(info);
  }
}

test("connect pins the certificate hash and passes other options through", async () => {
  globalThis.WebTransport = MemoryTransport;
  try {
    const hash = "0123456789abcdef".repeat(4);
    const session = await connect("https://127.0.0.1:1/x", {
      certificateHash: hash,
      congestionControl: "low-latency",
      maxMessageSize: 99,
    });
    assert.ok(session instanceof Session);
    const { options, url } = session.raw;
    assert.equal(url, "https://127.0.0.1:1/x");
    assert.equal(options.congestionControl, "low-latency");
    assert.equal(options.maxMessageSize, undefined);
    assert.equal(options.serverCertificateHashes[0].algorithm, "sha-256");
    assert.equal(Buffer.from(options.serverCertificateHashes[0].value).toString("hex"), hash);
    assert.equal(session.maxMessageSize, 99);
    await assert.rejects(connect("https://x/", { certificateHash: "abcd" }), /32 bytes/);
    const plain = await connect("https://127.0.0.1:1/y");
    assert.equal(plain.raw.options.serverCertificateHashes, undefined);
  } finally {
    delete globalThis.WebTransport;
  }
});

test("datagrams: JSON out, JSON in, invalid ones counted and skipped", async () => {
  const transport = new MemoryTransport();
  const session = new Session(transport);
  const received = transport.serverDatagrams.received.read();
  await session.sendDatagram({ type: "inc", by: 1 });
  const { value } = await received;
  assert.equal(Buffer.from(value).toString(), '{"type":"inc","by":1}');
  assert.throws(() => session.sendDatagram("x".repeat(100)), /exceeds maxDatagramSize \(64/);

  transport.serverDatagrams.send.enqueue(utf8('{"n":1}'));
  transport.serverDatagrams.send.enqueue(utf8("{garbage"));
  transport.serverDatagrams.send.enqueue(utf8("[2]"));
  transport.serverDatagrams.send.close();
  const got = [];
  for await (const message of session.datagrams()) got.push(message);
  assert.deepEqual(got, [{ n: 1 }, [2]]);
  assert.equal(session.invalidDatagrams, 1);
});

test("request sends one message up to FIN and returns the whole reply", async () => {
  const transport = new MemoryTransport();
  const session = new Session(transport);
  const reply = session.request({ ask: 21 });
  while (transport.server.streams.length === 0) await new Promise((r) => setTimeout(r, 1));
  const stream = transport.server.streams[0];
  const body = JSON.parse(Buffer.from(await readAllBytes(stream.readable)).toString());
  writeAll(stream.writable, [utf8('{"answer":'), utf8(`${body.ask * 2}}`)]);
  assert.deepEqual(await reply, { answer: 42 });
});

test("request refuses a reply over the size limit", async () => {
  const transport = new MemoryTransport();
  const session = new Session(transport, { maxMessageSize: 4 });
  const reply = session.request(1);
  while (transport.server.streams.length === 0) await new Promise((r) => setTimeout(r, 1));
  writeAll(transport.server.streams[0].writable, [utf8("123456")]);
  await assert.rejects(reply, MessageTooLargeError);
});

test("MessageStream frames messages both ways", async () => {
  const transport = new MemoryTransport();
  const session = new Session(transport);
  const stream = await session.openStream();
  assert.ok(stream instanceof MessageStream);
  const server = transport.server.streams[0];
  const serverReader = readAllBytes(server.readable);
  await stream.send({ a: 1 });
  await stream.send([]);
  await stream.close();
  const decoder = new FrameDecoder();
  const frames = decoder.feed(await serverReader).map((p) => Buffer.from(p).toString());
  assert.deepEqual(frames, ['{"a":1}', "[]"]);

  const wire = Buffer.concat([encodeFrame(utf8('"one"')), encodeFrame(utf8("null"))]);
  const written = writeAll(server.writable, [wire.subarray(0, 6), wire.subarray(6)]);
  const got = [];
  for await (const message of stream) got.push(message);
  assert.deepEqual(got, ["one", null]);
  await written;
  assert.equal(await stream.receive(), undefined);
});

test("MessageStream rejects an oversize frame and a truncated stream", async () => {
  const transport = new MemoryTransport();
  const session = new Session(transport);
  const big = await session.openStream({ maxMessageSize: 3 });
  writeAll(transport.server.streams[0].writable, [new Uint8Array([0, 0, 0, 4])]);
  await assert.rejects(big.receive(), MessageTooLargeError);

  const cut = await session.openStream();
  writeAll(transport.server.streams[1].writable, [new Uint8Array([0, 0, 0, 4, 1])]);
  await assert.rejects(cut.receive(), /stream ended inside a message/);
});

test("incomingStreams yields server-opened bidi and uni streams", async () => {
  const transport = new MemoryTransport();
  const session = new Session(transport);
  const bidi = transport.serverOpenBidi();
  const uni = new TransformStream();
  transport.server.uni.enqueue(uni.readable);
  writeAll(uni.writable, [utf8('{"pushed":true}')]);
  writeAll(bidi.writable, [encodeFrame(utf8("7"))]);

  const seen = [];
  for await (const stream of session.incomingStreams()) {
    if (stream.writable) {
      seen.push(["bidi", await stream.receive()]);
    } else {
      seen.push(["uni", await stream.readJSON()]);
    }
    if (seen.length === 2) break;
  }
  seen.sort();
  assert.deepEqual(seen, [
    ["bidi", 7],
    ["uni", { pushed: true }],
  ]);

  // A stream that arrives after the loop was left is kept for the next loop.
  transport.serverOpenBidi();
  transport.server.bidi.close();
  transport.server.uni.close();
  const later = [];
  for await (const stream of session.incomingStreams()) later.push(stream.writable);
  assert.deepEqual(later, [true]);
});

test("close passes the code and reason", () => {
  const transport = new MemoryTransport();
  new Session(transport).close({ code: 7, reason: "bye" });
  assert.deepEqual(transport.closeInfo, { closeCode: 7, reason: "bye" });
});

test("receive() calls made at once are answered in order, none lost", async () => {
  const transport = new MemoryTransport();
  const session = new Session(transport);
  const stream = await session.openStream();
  const frames = [1, 2, 3].map((n) => encodeFrame(utf8(String(n))));
  const pending = [stream.receive(), stream.receive(), stream.receive(), stream.receive()];
  writeAll(transport.server.streams[0].writable, [Buffer.concat(frames)]);
  assert.deepEqual(await Promise.all(pending), [1, 2, 3, undefined]);
});

test("a framing error sticks: later receive() calls throw it again", async () => {
  const transport = new MemoryTransport();
  const session = new Session(transport);
  const stream = await session.openStream({ maxMessageSize: 3 });
  writeAll(transport.server.streams[0].writable, [new Uint8Array([0, 0, 0, 9])]);
  await assert.rejects(stream.receive(), MessageTooLargeError);
  await assert.rejects(stream.receive(), MessageTooLargeError);
});

test("two incomingStreams() loops never get the same stream", async () => {
  const transport = new MemoryTransport();
  const session = new Session(transport);
  const first = session.incomingStreams()[Symbol.asyncIterator]();
  const second = session.incomingStreams()[Symbol.asyncIterator]();
  const a = first.next();
  const b = second.next();
  const one = new TransformStream();
  const two = new TransformStream();
  transport.server.uni.enqueue(one.readable);
  transport.server.uni.enqueue(two.readable);
  const [x, y] = await Promise.all([a, b]);
  assert.notEqual(x.value, y.value);
});
