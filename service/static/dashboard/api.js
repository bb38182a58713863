// The browser side of the Weightsmith API: the key, JSON requests and the event stream.
// EventSource cannot send an Authorization header, so events are read with fetch() and a
// small Server-Sent Events parser, reconnecting with Last-Event-ID like EventSource would.

const KEY_STORAGE = "weightsmith_api_key";

export function apiKey() {
  const match = location.hash.match(/key=([^&]+)/);
  if (match) {
    localStorage.setItem(KEY_STORAGE, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return localStorage.getItem(KEY_STORAGE);
}

export function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = !message;
}

// Ask for the key once; resolves when one is stored.
export function requireKey() {
  const forget = document.getElementById("forget-key");
  forget.onclick = () => { localStorage.removeItem(KEY_STORAGE); location.reload(); };
  const key = apiKey();
  if (key) { forget.hidden = false; return Promise.resolve(key); }
  const form = document.getElementById("key-form");
  form.hidden = false;
  return new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      const value = document.getElementById("key-input").value.trim();
      if (!value) return;
      localStorage.setItem(KEY_STORAGE, value);
      form.hidden = true;
      forget.hidden = false;
      resolve(value);
    };
  });
}

function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${apiKey()}`, ...extra };
}

async function problem(response) {
  let body = null;
  try { body = await response.json(); } catch (_) { /* not problem+json */ }
  const detail = body && body.detail ? `: ${body.detail}` : "";
  if (response.status === 401) {
    return new Error(`the API key was refused (401)${detail}. Use "Forget key" and paste another.`);
  }
  return new Error(`${response.status} ${body && body.title ? body.title : response.statusText}${detail}`);
}

export async function getJSON(path) {
  const response = await fetch(path, { headers: authHeaders({ Accept: "application/json" }) });
  if (!response.ok) throw await problem(response);
  return response.json();
}

// getJSON, except that a 404 answers null: a resource only some jobs have.
export async function getJSONIfFound(path) {
  const response = await fetch(path, { headers: authHeaders({ Accept: "application/json" }) });
  if (response.status === 404) return null;
  if (!response.ok) throw await problem(response);
  return response.json();
}

export async function postJSON(path, body) {
  const response = await fetch(path, {
    method: "POST", body: JSON.stringify(body),
    headers: authHeaders({ Accept: "application/json", "Content-Type": "application/json" }),
  });
  if (!response.ok) throw await problem(response);
  return response.json();
}

export async function getBlob(path) {
  const response = await fetch(path, { headers: authHeaders() });
  if (!response.ok) throw await problem(response);
  return response.blob();
}

// Calls onEvent({id, event, data}) for every event of the stream at `path` (a job's or a
// sweep's /events) until isFinished() says the job or sweep is over.
export async function streamEvents(path, onEvent, isFinished) {
  let lastId = null;
  let retryMs = 1000;
  for (;;) {
    const headers = authHeaders({ Accept: "text/event-stream" });
    if (lastId !== null) headers["Last-Event-ID"] = String(lastId);
    try {
      const response = await fetch(path, { headers });
      if (!response.ok) throw await problem(response);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = parseBlock(block);
          if (event.retry) retryMs = event.retry;
          if (event.data === undefined) continue;
          if (event.id !== null) lastId = event.id;
          onEvent(event);
        }
      }
    } catch (error) {
      showError(`event stream: ${error.message}; reconnecting`);
    }
    if (await isFinished()) return;
    await new Promise((resolve) => setTimeout(resolve, retryMs));
  }
}

// Every event of a finished job or sweep, read whole: its stream replays them and ends (a
// streamed read under headless Chromium's virtual time may not finish in its budget).
export async function readEvents(path) {
  const response = await fetch(path, { headers: authHeaders({ Accept: "text/event-stream" }) });
  if (!response.ok) throw await problem(response);
  return (await response.text()).split("\n\n").map(parseBlock).filter((e) => e.data !== undefined);
}

function parseBlock(block) {
  const event = { id: null, event: "message", data: undefined, retry: null };
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") data.push(value);
    else if (name === "event") event.event = value;
    else if (name === "id" && /^\d+$/.test(value)) event.id = Number(value);
    else if (name === "retry" && /^\d+$/.test(value)) event.retry = Number(value);
  }
  if (data.length) {
    try { event.data = JSON.parse(data.join("\n")); } catch (_) { event.data = data.join("\n"); }
  }
  return event;
}

// Why a job stopped and what went wrong, side by side: a diverged job has both, and the
// failure (which epoch and batch blew up) is the part a user acts on.
export function ending(job) {
  return [job.stop_reason, job.failure_reason].filter(Boolean).join("; ");
}

// Percent done: a job that succeeded ran every epoch it was going to (early stopping and the
// runtime budget end a run successfully before its `epochs`), so it reads as complete.
export function percentDone(job) {
  const p = job.progress || {};
  if (job.status === "succeeded") return 100;
  return p.epochs ? (100 * (p.epoch || 0)) / p.epochs : 0;
}

export function fmt(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  return String(value);
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}
