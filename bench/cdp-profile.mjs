// Samples a Worker's isolate under `wrangler dev` for the edge benchmark's "where a hit's time goes":
//   node bench/cdp-profile.mjs INSPECTOR_PORT SECONDS OUT [AFTER_SECONDS]
// Connects to the inspector wrangler dev serves (`--inspector-port`, the Chrome DevTools Protocol), waits
// AFTER_SECONDS (0 by default: the load it samples gets under way meanwhile), runs V8's sampling profiler
// for SECONDS (a sample every 100 µs), then writes OUT as JSON:
// `{ "profile": <Profiler.Profile>, "sources": { "<scriptId>": "<source>" } }`, with the source of every
// JavaScript script the samples name, so that each sampled line can be traced to the module it was
// bundled from. The debugger is enabled only after the profile is taken: it costs nothing while sampling.
import { writeFileSync } from "node:fs";
import WebSocket from "../node_modules/ws/index.js";

const [port, seconds, out, after = "0"] = process.argv.slice(2);
if (!port || !seconds || !out) {
  console.error("usage: node bench/cdp-profile.mjs INSPECTOR_PORT SECONDS OUT [AFTER_SECONDS]");
  process.exit(2);
}

const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
if (!targets.length) throw new Error(`no inspector target on port ${port}`);
const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
let lastId = 0;
const pending = new Map();
socket.on("message", (data) => {
  const message = JSON.parse(data);
  const waiter = message.id && pending.get(message.id);
  if (!waiter) return;
  pending.delete(message.id);
  if (message.error) waiter.reject(new Error(`${waiter.method}: ${JSON.stringify(message.error)}`));
  else waiter.resolve(message.result);
});
const send = (method, params = {}) =>
  new Promise((resolve, reject) => {
    const id = ++lastId;
    pending.set(id, { resolve, reject, method });
    socket.send(JSON.stringify({ id, method, params }));
  });
await new Promise((resolve, reject) => {
  socket.once("open", resolve);
  socket.once("error", reject);
});

await new Promise((resolve) => setTimeout(resolve, Number(after) * 1000));
await send("Profiler.enable");
await send("Profiler.setSamplingInterval", { interval: 100 });
await send("Profiler.start");
await new Promise((resolve) => setTimeout(resolve, Number(seconds) * 1000));
const { profile } = await send("Profiler.stop");

await send("Debugger.enable");
const sources = {};
const scripts = new Set(
  profile.nodes
    .map((node) => node.callFrame)
    .filter((frame) => frame.url && !frame.url.startsWith("wasm://"))
    .map((frame) => frame.scriptId),
);
for (const scriptId of scripts) {
  sources[scriptId] = (await send("Debugger.getScriptSource", { scriptId })).scriptSource;
}
await send("Debugger.disable");
writeFileSync(out, JSON.stringify({ profile, sources }));
socket.close();
