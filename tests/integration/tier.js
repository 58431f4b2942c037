// One tier of a test service chain, in Node.js (the Python one is tier_server.py, with the same
// interface): GET /<anything> answers 200 "ok"; with --upstream URL it first makes one GET to
// URL (a new connection each time) and answers 502 if that fails. Prints "port=N" once listening
// on 127.0.0.1. Run it as `node tier.js [--upstream URL] [--name NAME]`: --name sets the process
// title (and so the comm faultline names the service by).
"use strict";
const http = require("http");

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : "";
};
const upstream = opt("--upstream");
if (opt("--name")) process.title = opt("--name");
const agent = new http.Agent({ keepAlive: false });

const server = http.createServer((req, res) => {
  const answer = (status) => {
    res.writeHead(status, { "Content-Length": 2 });
    res.end("ok");
  };
  if (!upstream) return answer(200);
  const call = http.get(upstream, { agent, timeout: 5000 }, (up) => {
    up.resume();
    up.on("end", () => answer(up.statusCode === 200 ? 200 : 502));
  });
  call.on("timeout", () => call.destroy(new Error("timeout")));
  call.on("error", () => answer(502));
});
server.keepAliveTimeout = 5000;
server.listen(0, "127.0.0.1", () => {
  console.log("port=" + server.address().port);
});
