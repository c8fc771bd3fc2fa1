// wtframe.js: a dependency-free ES module for talking to a wtframe server from a browser.
//
//   import { connect } from "/wtframe.js";
//   const session = await connect("https://localhost:4433/counter", { certificateHash });
//   session.sendDatagram({ type: "inc", by: 1 });
//   for await (const msg of session.datagrams()) console.log(msg);
//
// Messages are JSON. On a framed stream each message is a 4-byte unsigned big-endian
// length N followed by N bytes of UTF-8 JSON (N = 0 is an empty message); nothing else
// is on the stream. A request/response exchange instead sends one message as the whole
// content of a stream up to FIN, and reads the reply the same way.

export const HEADER_SIZE = 4;
export const MAX_FRAME_PAYLOAD = 0xffffffff;
export const MAX_MESSAGE_SIZE_DEFAULT = 1 << 20;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

/** A message over the configured size limit. */
export class MessageTooLargeError extends Error {
  constructor(size, limit) {
    super(`message of ${size} bytes exceeds the limit of ${limit} bytes`);
    this.name = "MessageTooLargeError";
    this.size = size;
    this.limit = limit;
  }
}

/** A stream ended in the middle of a framed message. */
export class TruncatedMessageError extends Error {
  constructor(message) {
    super(message);
    this.name = "TruncatedMessageError";
  }
}

/** Bytes that are not a valid UTF-8 JSON message. */
export class DecodeError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "DecodeError";
  }
}

function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  throw new TypeError("expected a Uint8Array, ArrayBuffer or ArrayBuffer view");
}

/** Frame one payload: its 4-byte big-endian length, then the payload. */
export function encodeFrame(payload) {
  const bytes = toBytes(payload);
  if (bytes.byteLength > MAX_FRAME_PAYLOAD) {
    throw new MessageTooLargeError(bytes.byteLength, MAX_FRAME_PAYLOAD);
  }
  const frame = new Uint8Array(HEADER_SIZE + bytes.byteLength);
  new DataView(frame.buffer).setUint32(0, bytes.byteLength, false);
  frame.set(bytes, HEADER_SIZE);
  return frame;
}

/**
 * Splits the bytes of a framed stream back into payloads, however the chunks are cut.
 *
 * A payload inside one chunk is returned as a view of that chunk (no copy); a payload
 * split across chunks is assembled in its own buffer. An announced length over
 * `maxSize` throws MessageTooLargeError at once, before any of the payload is stored,
 * and the decoder then throws that error on every call.
 */
export class FrameDecoder {
  constructor(maxSize = MAX_MESSAGE_SIZE_DEFAULT) {
    if (!Number.isInteger(maxSize) || maxSize < 0) {
      throw new RangeError(`maxSize must be an integer >= 0, not ${maxSize}`);
    }
    this.maxSize = maxSize;
    this._head = new Uint8Array(HEADER_SIZE);
    this._headLength = 0;
    this._payload = null; // the split payload being assembled
    this._filled = 0;
    this._error = null;
  }

  /** Bytes of an incomplete frame currently held (length field and payload). */
  get buffered() {
    return this._payload === null ? this._headLength : this._filled;
  }

  /** Take the next chunk of the stream; return the payloads it completes, in order. */
  feed(chunk) {
    if (this._error !== null) throw this._error;
    const data = toBytes(chunk);
    const n = data.byteLength;
    const view = new DataView(data.buffer, data.byteOffset, n);
    const out = [];
    let pos = 0;
    if (this._headLength > 0 || this._payload !== null) pos = this._resume(data, out);
    while (n - pos >= HEADER_SIZE) {
      const size = view.getUint32(pos, false);
      if (size > this.maxSize) this._fail(size);
      const start = pos + HEADER_SIZE;
      pos = start + size;
      if (pos > n) {
        this._payload = new Uint8Array(size);
        this._payload.set(data.subarray(start));
        this._filled = n - start;
        return out;
      }
      out.push(data.subarray(start, pos));
    }
    if (pos < n) {
      this._head.set(data.subarray(pos));
      this._headLength = n - pos;
    }
    return out;
  }

  /** Declare the end of the stream; throws TruncatedMessageError inside a frame. */
  eof() {
    if (this._error !== null) throw this._error;
    if (this._headLength > 0) {
      throw new TruncatedMessageError(
        `stream ended inside a frame header (${this._headLength} of ${HEADER_SIZE} bytes)`,
      );
    }
    if (this._payload !== null) {
      throw new TruncatedMessageError(
        `stream ended inside a message (${this._filled} of ${this._payload.byteLength} bytes)`,
      );
    }
  }

  _resume(data, out) {
    const n = data.byteLength;
    let pos = 0;
    if (this._payload === null) {
      const take = Math.min(HEADER_SIZE - this._headLength, n);
      this._head.set(data.subarray(0, take), this._headLength);
      this._headLength += take;
      if (this._headLength < HEADER_SIZE) return n;
      const size = new DataView(this._head.buffer).getUint32(0, false);
      if (size > this.maxSize) this._fail(size);
      this._headLength = 0;
      pos = take;
      if (size === 0) {
        out.push(new Uint8Array(0));
        return pos;
      }
      this._payload = new Uint8Array(size);
      this._filled = 0;
    }
    const payload = this._payload;
    const take = Math.min(payload.byteLength - this._filled, n - pos);
    payload.set(data.subarray(pos, pos + take), this._filled);
    this._filled += take;
    if (this._filled < payload.byteLength) return n;
    out.push(payload);
    this._payload = null;
    this._filled = 0;
    return pos + take;
  }

  _fail(size) {
    this._headLength = 0;
    this._payload = null;
    this._filled = 0;
    this._error = new MessageTooLargeError(size, this.maxSize);
    throw this._error;
  }
}

/** Encode a value as compact UTF-8 JSON. */
export function encodeJSON(obj) {
  const text = JSON.stringify(obj);
  if (text === undefined) throw new TypeError(`cannot encode ${typeof obj} as JSON`);
  return textEncoder.encode(text);
}

/** Decode UTF-8 JSON bytes; throws DecodeError on invalid UTF-8 or JSON. */
export function decodeJSON(bytes) {
  let text;
  try {
    text = textDecoder.decode(toBytes(bytes));
  } catch (error) {
    throw new DecodeError(`invalid UTF-8: ${error.message}`, { cause: error });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new DecodeError(`invalid JSON: ${error.message}`, { cause: error });
  }
}

/** Convert a hex string ("ab12...", colons and spaces allowed) to bytes. */
export function hexToBytes(hex) {
  const clean = String(hex).replace(/[\s:]/g, "");
  if (clean.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(clean)) {
    throw new Error(`not a hex string: ${JSON.stringify(String(hex))}`);
  }
  const bytes = new Uint8Array(clean.length / 2);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  }
  return bytes;
}

function certificateHashBytes(hash) {
  const bytes = typeof hash === "string" ? hexToBytes(hash) : toBytes(hash);
  if (bytes.byteLength !== 32) {
    throw new Error(
      `certificateHash must be a SHA-256 hash (32 bytes), not ${bytes.byteLength} bytes`,
    );
  }
  return bytes;
}

async function readAll(readable, maxSize) {
  const reader = readable.getReader();
  const chunks = [];
  let total = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxSize) {
        const error = new MessageTooLargeError(total, maxSize);
        reader.cancel(error).catch(() => {});
        throw error;
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  if (chunks.length === 1) return chunks[0];
  const whole = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    whole.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return whole;
}

function quiet(promise) {
  promise.catch(() => {});
  return promise;
}

/**
 * Connect to a wtframe server and wait until the session is ready.
 *
 * `certificateHash` (64 hex digits, or 32 bytes) pins a self-signed certificate through
 * `serverCertificateHashes`; `maxMessageSize` is the default limit for received stream
 * messages; every other option goes to the WebTransport constructor unchanged.
 *
 * The session is closed (code 0) when the page is left: Firefox otherwise keeps a session
 * of a closed page open until the connection times out. Pass `closeOnPageHide: false` to
 * manage that yourself.
 */
export async function connect(
  url,
  { certificateHash, maxMessageSize, closeOnPageHide = true, ...options } = {},
) {
  const init = { ...options };
  if (certificateHash !== undefined && certificateHash !== null) {
    init.serverCertificateHashes = [
      { algorithm: "sha-256", value: certificateHashBytes(certificateHash) },
    ];
  }
  const transport = new WebTransport(url, init);
  quiet(transport.closed);
  await transport.ready;
  if (closeOnPageHide && typeof globalThis.addEventListener === "function") {
    const onPageHide = () => {
      try {
        transport.close({ closeCode: 0, reason: "" });
      } catch {
        // already closed
      }
    };
    globalThis.addEventListener("pagehide", onPageHide, { once: true });
    quiet(transport.closed.finally(() => globalThis.removeEventListener("pagehide", onPageHide)));
  }
  return new Session(transport, { maxMessageSize });
}

/** A WebTransport session exchanging JSON messages. */
export class Session {
  constructor(transport, { maxMessageSize = MAX_MESSAGE_SIZE_DEFAULT } = {}) {
    this.raw = transport;
    this.closed = transport.closed;
    this.maxMessageSize = maxMessageSize;
    this.invalidDatagrams = 0;
    this._datagramWriter = null;
    this._datagramReader = null;
    this._incoming = null;
  }

  /** Send one message as a datagram; returns the write promise. */
  sendDatagram(obj) {
    const bytes = encodeJSON(obj);
    const datagrams = this.raw.datagrams;
    const limit = datagrams.maxDatagramSize;
    if (typeof limit === "number" && bytes.byteLength > limit) {
      throw new Error(
        `datagram of ${bytes.byteLength} bytes exceeds maxDatagramSize (${limit} bytes)`,
      );
    }
    if (this._datagramWriter === null) {
      const writable = datagrams.writable ?? datagrams.createWritable();
      this._datagramWriter = writable.getWriter();
    }
    return quiet(this._datagramWriter.write(bytes));
  }

  /** Yield every datagram message; undecodable ones are counted in invalidDatagrams. */
  async *datagrams() {
    this._datagramReader ??= this.raw.datagrams.readable.getReader();
    for (;;) {
      const { value, done } = await this._datagramReader.read();
      if (done) return;
      let message;
      try {
        message = decodeJSON(value);
      } catch {
        this.invalidDatagrams += 1;
        continue;
      }
      yield message;
    }
  }

  /** Open a bidirectional stream of framed messages. */
  async openStream({ maxMessageSize = this.maxMessageSize } = {}) {
    const stream = await this.raw.createBidirectionalStream();
    return new MessageStream(stream, { maxMessageSize });
  }

  /** Send one message on a new stream, finish it, and return the decoded reply. */
  async request(obj, { maxMessageSize = this.maxMessageSize } = {}) {
    const bytes = encodeJSON(obj);
    const { readable, writable } = await this.raw.createBidirectionalStream();
    const send = async () => {
      const writer = writable.getWriter();
      await writer.write(bytes);
      await writer.close();
    };
    const [, reply] = await Promise.all([send(), readAll(readable, maxMessageSize)]);
    return decodeJSON(reply);
  }

  /**
   * Yield the streams the server opens: bidirectional ones as MessageStream, and
   * unidirectional ones as receive-only MessageStream (`stream.writable` is false).
   */
  async *incomingStreams({ maxMessageSize = this.maxMessageSize } = {}) {
    // Pending reads live on the session so that leaving the loop loses no stream.
    const makeSource = (kind, readable) => ({
      kind,
      reader: readable.getReader(),
      done: false,
      pending: null,
    });
    const state = (this._incoming ??= {
      sources: [
        makeSource("bidi", this.raw.incomingBidirectionalStreams),
        makeSource("uni", this.raw.incomingUnidirectionalStreams),
      ],
    });
    for (;;) {
      const live = state.sources.filter((source) => !source.done);
      if (live.length === 0) return;
      for (const source of live) {
        source.pending ??= quiet(
          source.reader.read().then((result) => ({ source, result })),
        );
      }
      const waited = live.map((s) => s.pending);
      const { source, result } = await Promise.race(waited);
      // Another loop over incomingStreams() may have taken this result already.
      if (source.pending !== waited[live.indexOf(source)]) continue;
      source.pending = null;
      if (result.done) {
        source.done = true;
        continue;
      }
      const stream =
        source.kind === "bidi" ? result.value : { readable: result.value, writable: null };
      yield new MessageStream(stream, { maxMessageSize });
    }
  }

  /** Close the session with an application code and reason. */
  close({ code = 0, reason = "" } = {}) {
    this.raw.close({ closeCode: code, reason });
  }
}

/**
 * Framed JSON messages on one stream: `send()` writes, `receive()` and `for await` read.
 *
 * For the one-message-per-stream pattern use `readAll()` or `readJSON()` instead of
 * `receive()`.
 */
export class MessageStream {
  constructor(stream, { maxMessageSize = MAX_MESSAGE_SIZE_DEFAULT } = {}) {
    this.raw = stream;
    this.maxMessageSize = maxMessageSize;
    this._readable = stream.readable ?? null;
    this._reader = null;
    this._writer = stream.writable ? stream.writable.getWriter() : null;
    this._decoder = new FrameDecoder(maxMessageSize);
    this._queue = [];
    this._next = 0;
    this._ended = false;
    this._error = null; // a framing error: every later receive() throws it again
    this._receiving = Promise.resolve(); // receive() calls run one after another
  }

  /** Whether this side can send on the stream. */
  get writable() {
    return this._writer !== null;
  }

  /** Send one message as a frame. */
  async send(obj) {
    if (this._writer === null) throw new Error("this stream is receive-only");
    await this._writer.write(encodeFrame(encodeJSON(obj)));
  }

  /**
   * Return the next message, or undefined once the peer has finished the stream.
   *
   * Calls made before earlier ones have settled get the messages in call order.
   */
  receive() {
    const next = this._receiving.then(() => this._receiveNext());
    this._receiving = next.catch(() => {});
    return next;
  }

  async _receiveNext() {
    while (this._next >= this._queue.length) {
      if (this._error !== null) throw this._error;
      if (this._ended) return undefined;
      this._reader ??= this._readable.getReader();
      const { value, done } = await this._reader.read();
      try {
        if (done) {
          this._ended = true;
          this._decoder.eof();
          return undefined;
        }
        this._queue = this._decoder.feed(value);
        this._next = 0;
      } catch (error) {
        this._error = error;
        if (!done) quiet(this._reader.cancel(error));
        throw error;
      }
    }
    const payload = this._queue[this._next];
    this._queue[this._next++] = undefined;
    return decodeJSON(payload);
  }

  async *[Symbol.asyncIterator]() {
    for (;;) {
      const message = await this.receive();
      if (message === undefined) return;
      yield message;
    }
  }

  /** Read the whole stream up to FIN, unframed (one message per stream). */
  async readAll({ maxSize = this.maxMessageSize } = {}) {
    if (this._reader !== null) throw new Error("receive() already read from this stream");
    return readAll(this._readable, maxSize);
  }

  /** Read the whole stream up to FIN and decode it as one JSON message. */
  async readJSON(options) {
    return decodeJSON(await this.readAll(options));
  }

  /** Finish the sending side (FIN). */
  async close() {
    if (this._writer !== null) await this._writer.close();
  }
}
