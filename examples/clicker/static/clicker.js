// The clicker page: one request/response stream per click, a pushed leaderboard, and
// automatic reconnection. The protocol is described in examples/clicker/app.py.
import { connect } from "/wtframe.js";

const $ = (id) => document.getElementById(id);
const nameInput = $("username");
const button = $("click");
const scoreOut = $("score");
const statusOut = $("status");
const errorOut = $("error");
const board = $("leaderboard");

let session = null; // the live session, or null while (re)connecting
let name = ""; // the name the shown score belongs to
let generation = 0; // bumped when the name changes: replies for an older name are dropped
let best = 0; // the highest score seen for `name`: replies may overtake each other

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function setStatus(text) {
  statusOut.textContent = text;
  statusOut.className = text;
  button.disabled = text !== "connected";
}

function showError(text) {
  errorOut.textContent = text;
}

// The server normalises names the same way (NFC, trimmed, single spaces).
function useName() {
  const wanted = nameInput.value.normalize("NFC").trim().replace(/ {2,}/g, " ");
  if (wanted !== name) {
    name = wanted;
    generation += 1;
    best = 0;
    scoreOut.textContent = "0";
  }
  return name;
}

async function send(type) {
  const who = useName();
  if (!who) {
    showError("Enter your name first.");
    return;
  }
  if (session === null) {
    showError("Not connected yet.");
    return;
  }
  const mine = generation;
  let reply;
  try {
    reply = await session.request({ type, username: who });
  } catch (error) {
    showError(`The request failed: ${error.message}`);
    return;
  }
  if (mine !== generation) return;
  if (reply.type === "score") {
    best = Math.max(best, reply.score);
    scoreOut.textContent = String(best);
    showError("");
  } else if (reply.code === "rate_limited") {
    showError(`Slow down! Try again in ${reply.retry_after} s.`);
  } else {
    showError(reply.message ?? "The server refused the request.");
  }
}

function renderBoard(top) {
  board.replaceChildren(
    ...top.map(({ username, score }) => {
      const item = document.createElement("li");
      item.textContent = `${username} — ${score}`;
      return item;
    }),
  );
}

async function followLeaderboard(current) {
  try {
    for await (const stream of current.incomingStreams()) {
      for await (const message of stream) {
        if (message.type === "leaderboard") renderBoard(message.top);
      }
    }
  } catch {
    // the session ended; the next one brings a new board
  }
}

async function stayConnected() {
  let delay = 250;
  for (;;) {
    setStatus("connecting");
    try {
      // Read the config every time: a restarted server may have a new port or certificate.
      const response = await fetch("/config.json", { cache: "no-store" });
      if (!response.ok) throw new Error(`/config.json answered ${response.status}`);
      const config = await response.json();
      const current = await connect(config.url, { certificateHash: config.certificateHash });
      session = current;
      delay = 250;
      setStatus("connected");
      followLeaderboard(current);
      if (useName()) send("hello");
      await current.closed.catch(() => {});
    } catch (error) {
      console.warn("clicker: cannot connect:", error);
    }
    session = null;
    setStatus("disconnected");
    await sleep(delay * (0.75 + Math.random() / 2));
    delay = Math.min(delay * 2, 4000);
  }
}

nameInput.addEventListener("change", () => {
  if (useName()) send("hello");
});
button.addEventListener("click", () => send("click"));
stayConnected();
