// Tests of the pure helpers of wtframe/static/wtframe.js: node --test tests/js/
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

// The module ships as a plain .js file with no package.json, so load it as ES module source.
const source = readFileSync(new URL("../../wtframe/static/wtframe.js", import.meta.url), "utf8");
const wt = await import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`);
const vectors = JSON.parse(readFileSync(new URL("./vectors.json", import.meta.url), "utf8"));

const {
  FrameDecoder,
  MessageTooLargeError,
  TruncatedMessageError,
  DecodeError,
  encodeFrame,
  encodeJSON,
  decodeJSON,
  hexToBytes,
  MAX_MESSAGE_SIZE_DEFAULT,
} = wt;

const toHex = (bytes) => Buffer.from(bytes).toString("hex");
const concat = (arrays) => new Uint8Array(Buffer.concat(arrays.map((a) => Buffer.from(a))));
const patterned = (length) => {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = i % 251;
  return bytes;
};

function decodeAll(chunks, maxSize) {
  const decoder = new FrameDecoder(maxSize);
  const out = [];
  for (const chunk of chunks) out.push(...decoder.feed(chunk).map((p) => toHex(p)));
  decoder.eof();
  assert.equal(decoder.buffered, 0);
  return out;
}

// A tiny deterministic PRNG so failures reproduce.
function rng(seed) {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

test("encodeFrame matches the shared vectors byte for byte", () => {
  for (const { payload, frame } of vectors.frames) {
    assert.equal(toHex(encodeFrame(hexToBytes(payload))), frame);
    assert.deepEqual(decodeAll([hexToBytes(frame)]), [payload]);
  }
});

test("patterned vectors: large frames, including exactly 1 MiB", () => {
  for (const { length, header } of vectors.patterned) {
    const payload = patterned(length);
    const frame = encodeFrame(payload);
    assert.equal(toHex(frame.subarray(0, 4)), header);
    const chunks = [1, 3, 5, 4000, 65536, frame.length].map((end, i, ends) =>
      frame.subarray(i === 0 ? 0 : ends[i - 1], end),
    );
    assert.deepEqual(decodeAll(chunks), [toHex(payload)]);
  }
  assert.equal(MAX_MESSAGE_SIZE_DEFAULT, 1 << 20);
});

test("the shared stream decodes when split at every byte boundary", () => {
  const data = hexToBytes(vectors.stream.bytes);
  const encoded = concat(vectors.stream.payloads.map((p) => encodeFrame(hexToBytes(p))));
  assert.equal(toHex(encoded), vectors.stream.bytes);
  for (let i = 0; i <= data.length; i++) {
    assert.deepEqual(decodeAll([data.subarray(0, i), data.subarray(i)]), vectors.stream.payloads);
    for (let j = i; j <= data.length; j += 7) {
      const chunks = [data.subarray(0, i), data.subarray(i, j), data.subarray(j)];
      assert.deepEqual(decodeAll(chunks), vectors.stream.payloads);
    }
  }
  const single = [];
  for (let i = 0; i < data.length; i++) single.push(data.subarray(i, i + 1));
  assert.deepEqual(decodeAll(single), vectors.stream.payloads);
});

test("random payloads survive random chunking", () => {
  const random = rng(12345);
  for (let round = 0; round < 300; round++) {
    const payloads = [];
    const count = Math.floor(random() * 12);
    for (let i = 0; i < count; i++) {
      const bytes = new Uint8Array(Math.floor(random() * 40));
      for (let k = 0; k < bytes.length; k++) bytes[k] = Math.floor(random() * 256);
      payloads.push(bytes);
    }
    const data = concat(payloads.map((p) => encodeFrame(p)));
    const chunks = [];
    let pos = 0;
    while (pos < data.length) {
      const size = Math.floor(random() * 10);
      chunks.push(data.subarray(pos, pos + size));
      pos += size;
    }
    assert.deepEqual(decodeAll(chunks), payloads.map(toHex));
  }
});

test("JSON encoding matches Python's JSONCodec byte for byte", () => {
  for (const { value, encoded } of vectors.json) {
    assert.equal(toHex(encodeJSON(value)), encoded);
    assert.deepEqual(decodeJSON(hexToBytes(encoded)), value);
  }
  assert.equal(toHex(encodeJSON([NaN, Infinity])), toHex(new TextEncoder().encode("[null,null]")));
});

test("encodeJSON refuses values JSON cannot hold", () => {
  assert.throws(() => encodeJSON(undefined), TypeError);
  assert.throws(() => encodeJSON(() => 1), TypeError);
});

test("decodeJSON reports garbage as DecodeError", () => {
  assert.throws(() => decodeJSON(new TextEncoder().encode('{"a": ')), (error) => {
    assert.ok(error instanceof DecodeError);
    assert.match(error.message, /^invalid JSON: /);
    return true;
  });
  assert.throws(() => decodeJSON(new Uint8Array([0x7b, 0xff])), /invalid UTF-8/);
  assert.throws(() => decodeJSON(new TextEncoder().encode("NaN")), DecodeError);
});

test("an oversize length is rejected before its payload is stored", () => {
  const decoder = new FrameDecoder(255);
  const good = encodeFrame(new Uint8Array([1, 2]));
  assert.deepEqual(decoder.feed(concat([good, new Uint8Array([0, 0])])).map(toHex), ["0102"]);
  assert.equal(decoder.buffered, 2);
  assert.throws(
    () => decoder.feed(new Uint8Array([1, 0])),
    (error) => error instanceof MessageTooLargeError && error.size === 256 && error.limit === 255,
  );
  assert.equal(decoder.buffered, 0);
  assert.throws(() => decoder.feed(new Uint8Array(0)), MessageTooLargeError);
  assert.throws(() => decoder.eof(), MessageTooLargeError);

  const fresh = new FrameDecoder(10);
  assert.throws(() => fresh.feed(new Uint8Array([0, 0, 0, 11, 1, 2, 3])), MessageTooLargeError);
  assert.equal(fresh.buffered, 0);
  assert.deepEqual(decodeAll([encodeFrame(new Uint8Array(10))], 10), ["00".repeat(10)]);
  assert.deepEqual(decodeAll([encodeFrame(new Uint8Array(0))], 0), [""]);
});

test("a truncated stream is rejected by eof()", () => {
  const data = encodeFrame(new Uint8Array([1, 2, 3]));
  for (let cut = 1; cut < data.length; cut++) {
    const decoder = new FrameDecoder();
    assert.deepEqual(decoder.feed(data.subarray(0, cut)), []);
    assert.throws(() => decoder.eof(), TruncatedMessageError);
  }
  const decoder = new FrameDecoder();
  decoder.feed(new Uint8Array([0, 0]));
  assert.throws(() => decoder.eof(), /header \(2 of 4 bytes\)/);
  const partial = new FrameDecoder();
  partial.feed(new Uint8Array([0, 0, 0, 10, 1, 2, 3]));
  assert.equal(partial.buffered, 3);
  assert.throws(() => partial.eof(), /message \(3 of 10 bytes\)/);
});

test("a split payload does not depend on the chunk being kept", () => {
  const decoder = new FrameDecoder();
  const chunk = new Uint8Array([0, 0, 0, 4, 9, 8]);
  assert.deepEqual(decoder.feed(chunk), []);
  chunk.fill(0);
  assert.deepEqual(decoder.feed(new Uint8Array([7, 6])).map(toHex), ["09080706"]);
});

test("hexToBytes", () => {
  assert.deepEqual([...hexToBytes("00ff10Ab")], [0, 255, 16, 171]);
  assert.deepEqual([...hexToBytes("00:FF 10")], [0, 255, 16]);
  assert.equal(hexToBytes("ab".repeat(32)).length, 32);
  assert.throws(() => hexToBytes("abc"), /not a hex string/);
  assert.throws(() => hexToBytes("zz"), /not a hex string/);
});

test("FrameDecoder refuses a negative limit", () => {
  assert.throws(() => new FrameDecoder(-1), RangeError);
});
