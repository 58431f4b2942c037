#!/usr/bin/env node
// One service of the lab system, in Node.js: the same program, flags and fault file as
// service.py (see there for the contract).
//
//   service.js --name NAME --listen ADDR:PORT --route PATH=STEP[,STEP...] ... --fault-file FILE
//              [--data-dir DIR] [--keep-alive] [--timeout-ms MS] [--retries N]
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');

const DOWNSTREAM_TIMEOUT_MS = 2000;
const FAULT_REFRESH_MS = 100;
const BLOCK = 4096;

function usage(msg) {
  process.stderr.write(`service.js: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const a = { route: [], keepAlive: false, timeoutMs: DOWNSTREAM_TIMEOUT_MS, retries: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i], value = argv[i + 1];
    if (key === '--keep-alive') { a.keepAlive = true; i -= 1; continue; }
    if (value === undefined) usage(`${key}: missing value`);
    if (key === '--timeout-ms') a.timeoutMs = Number(value);
    else if (key === '--retries') a.retries = Number(value);
    else if (key === '--name') a.name = value;
    else if (key === '--listen') a.listen = value;
    else if (key === '--route') a.route.push(value);
    else if (key === '--fault-file') a.faultFile = value;
    else if (key === '--data-dir') a.dataDir = value;
    else usage(`unknown flag ${key}`);
  }
  for (const k of ['name', 'listen', 'faultFile']) if (!a[k]) usage(`--${k.replace('F', '-f')} is required`);
  if (!(a.timeoutMs > 0) || !Number.isInteger(a.retries) || a.retries < 0) {
    usage('--timeout-ms must be > 0 and --retries an integer >= 0');
  }
  return a;
}

function parseStep(step) {
  if (step === 'disk:read' || step === 'disk:write') return { kind: step };
  const targets = [];
  let p = null;
  for (const url of step.split('|')) {
    let u;
    try { u = new URL(url); } catch (e) { u = null; }
    if (!u || u.protocol !== 'http:' || !u.port) {
      usage(`--route: step ${step} is not http://HOST:PORT/PATH[|...] or disk:read|write`);
    }
    if (p !== null && (u.pathname || '/') !== p) usage(`--route: step ${step}: its instances differ in path`);
    p = u.pathname || '/';
    targets.push({ host: u.hostname, port: Number(u.port) });
  }
  return { kind: 'http', targets, path: p, turn: 0 };
}

function parseRoutes(specs) {
  const routes = new Map();
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    if (eq < 1 || spec[0] !== '/') usage(`--route ${spec}: expected PATH=STEP[,STEP...]`);
    routes.set(spec.slice(0, eq), spec.slice(eq + 1).split(',').filter(Boolean).map(parseStep));
  }
  return routes;
}

// The fault file's line, cached for FAULT_REFRESH_MS.
class FaultFile {
  constructor(file) { this.file = file; this.readAt = -Infinity; this.value = [null, 0]; }
  get() {
    const now = Date.now();
    if (now - this.readAt >= FAULT_REFRESH_MS) { this.readAt = now; this.value = this.parse(); }
    return this.value;
  }
  parse() {
    let words;
    try {
      words = fs.readFileSync(this.file, 'utf8').split('\n')[0].trim().split(/\s+/);
    } catch (e) {
      return [null, 0];
    }
    if (!['slow', 'error', 'leak'].includes(words[0])) return [null, 0];
    const value = words.length > 1 ? Number(words[1]) : (words[0] === 'error' ? 1 : 0);
    return Number.isFinite(value) ? [words[0], value] : [null, 0];
  }
}

// Buffers live outside the V8 heap, so the growth meets the cgroup's limit, not V8's. Filled,
// not just allocated: untouched pages would not be charged. Dropped once the fault is cleared.
function startLeak(fault) {
  let hoard = [];
  setInterval(() => {
    const [kind, mbPerS] = fault.get();
    if (kind === 'leak' && mbPerS > 0) hoard.push(Buffer.alloc(Math.floor(mbPerS * 1048576 / 10), 0x5a));
    else if (hoard.length) hoard = [];
  }, 100);
}

// One call: true on a 2xx answer. With a pool (keep-alive), a reused connection that the callee
// had closed while it was idle (a reset before any answer) is replaced once, which is no retry.
function call(target, path, opts, fresh) {
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok) => { if (!done) { done = true; clearTimeout(timer); resolve(ok); } };
    const req = http.get({ host: target.host, port: target.port, path,
                           agent: opts.agent || false,
                           headers: opts.agent ? {} : { Connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => finish(res.statusCode >= 200 && res.statusCode < 300));
      res.on('error', () => finish(false));
    });
    req.on('error', (e) => {
      if (!done && opts.agent && !fresh && req.reusedSocket && e.code === 'ECONNRESET') {
        done = true;
        clearTimeout(timer);
        call(target, path, opts, true).then(resolve);
        return;
      }
      finish(false);
    });
    const timer = setTimeout(() => { req.destroy(); finish(false); }, opts.timeoutMs);
  });
}

// A step's call: its instances in turn, a failed call tried again on the next one.
async function callStep(step, opts) {
  for (let attempt = 0; attempt <= opts.retries; attempt++) {
    step.turn = (step.turn + 1) % step.targets.length;
    if (await call(step.targets[step.turn], step.path, opts, false)) return true;
  }
  return false;
}

// Buffered I/O plus fsync: Node has no aligned buffers for O_DIRECT (the lab's store is the
// Python service, which uses it).
async function disk(kind, dataDir) {
  const file = path.join(dataDir, 'data.bin');
  if (kind === 'disk:read') {
    await fs.promises.readFile(file);
    return;
  }
  const fh = await fs.promises.open(file, 'w');
  try { await fh.write(Buffer.alloc(BLOCK, 0x5a)); await fh.sync(); } finally { await fh.close(); }
}

async function runStep(step, dataDir, opts) {
  if (step.kind === 'http') return callStep(step, opts);
  if (!dataDir) return false;
  try { await disk(step.kind, dataDir); return true; } catch (e) { return false; }
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  process.title = args.name;
  const routes = parseRoutes(args.route);
  const opts = { timeoutMs: args.timeoutMs, retries: args.retries,
                 agent: args.keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 64 }) : null };
  const fault = new FaultFile(args.faultFile);
  if (args.dataDir) fs.mkdirSync(args.dataDir, { recursive: true });
  startLeak(fault);
  const sep = args.listen.lastIndexOf(':');
  const host = args.listen.slice(0, sep), port = Number(args.listen.slice(sep + 1));

  const answer = (res, code, detail) => {
    const body = JSON.stringify({ service: args.name, status: code, detail }) + '\n';
    const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) };
    // The connection stays open unless the client asked to close it.
    if ((res.req.headers.connection || '').toLowerCase() === 'close') headers.Connection = 'close';
    res.writeHead(code, headers);
    res.end(body);
  };
  const server = http.createServer(async (req, res) => {
    const steps = routes.get(new URL(req.url, 'http://x').pathname);
    if (req.method !== 'GET' || steps === undefined) return answer(res, 404, 'no route');
    const [kind, value] = fault.get();
    if (kind === 'slow' && value > 0) await new Promise((r) => setTimeout(r, value));
    if (kind === 'error' && Math.random() < value) return answer(res, 500, 'injected error');
    for (const step of steps) {
      if (!(await runStep(step, args.dataDir, opts))) {
        const what = step.kind === 'http' ? step.targets.map((t) => `${t.host}:${t.port}`).join('|') + step.path
                                          : step.kind;
        return answer(res, 502, `downstream failed: ${what}`);
      }
    }
    answer(res, 200, 'ok');
  });
  // Idle client connections are closed after a minute, as Node's and most servers' default does
  // after some seconds: a pooled client meets it and reconnects.
  server.keepAliveTimeout = 60000;
  server.on('error', (e) => {
    process.stderr.write(`service.js: ${args.listen}: ${e.message}\n`);
    process.exit(1);
  });
  server.listen(port, host, 511, () => process.stdout.write('ready\n'));
}

main();
