#!/usr/bin/env node
// One service of the lab system, in Node.js: the same program, flags and fault file as
// service.py (see there for the contract).
//
//   service.js --name NAME --listen ADDR:PORT --route PATH=STEP[,STEP...] ... --fault-file FILE
//              [--data-dir DIR]
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
  const a = { route: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i], value = argv[i + 1];
    if (value === undefined) usage(`${key}: missing value`);
    if (key === '--name') a.name = value;
    else if (key === '--listen') a.listen = value;
    else if (key === '--route') a.route.push(value);
    else if (key === '--fault-file') a.faultFile = value;
    else if (key === '--data-dir') a.dataDir = value;
    else usage(`unknown flag ${key}`);
  }
  for (const k of ['name', 'listen', 'faultFile']) if (!a[k]) usage(`--${k.replace('F', '-f')} is required`);
  return a;
}

function parseStep(step) {
  if (step === 'disk:read' || step === 'disk:write') return { kind: step };
  let u;
  try { u = new URL(step); } catch (e) { u = null; }
  if (!u || u.protocol !== 'http:' || !u.port) {
    usage(`--route: step ${step} is not http://HOST:PORT/PATH or disk:read|write`);
  }
  return { kind: 'http', host: u.hostname, port: Number(u.port), path: u.pathname || '/' };
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

function call(step) {
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok) => { if (!done) { done = true; clearTimeout(timer); resolve(ok); } };
    const req = http.get({ host: step.host, port: step.port, path: step.path, agent: false,
                           headers: { Connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => finish(res.statusCode >= 200 && res.statusCode < 300));
      res.on('error', () => finish(false));
    });
    req.on('error', () => finish(false));
    const timer = setTimeout(() => { req.destroy(); finish(false); }, DOWNSTREAM_TIMEOUT_MS);
  });
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

async function runStep(step, dataDir) {
  if (step.kind === 'http') return call(step);
  if (!dataDir) return false;
  try { await disk(step.kind, dataDir); return true; } catch (e) { return false; }
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  process.title = args.name;
  const routes = parseRoutes(args.route);
  const fault = new FaultFile(args.faultFile);
  if (args.dataDir) fs.mkdirSync(args.dataDir, { recursive: true });
  startLeak(fault);
  const sep = args.listen.lastIndexOf(':');
  const host = args.listen.slice(0, sep), port = Number(args.listen.slice(sep + 1));

  const answer = (res, code, detail) => {
    const body = JSON.stringify({ service: args.name, status: code, detail }) + '\n';
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body),
                          Connection: 'close' });
    res.end(body);
  };
  const server = http.createServer(async (req, res) => {
    const steps = routes.get(new URL(req.url, 'http://x').pathname);
    if (req.method !== 'GET' || steps === undefined) return answer(res, 404, 'no route');
    const [kind, value] = fault.get();
    if (kind === 'slow' && value > 0) await new Promise((r) => setTimeout(r, value));
    if (kind === 'error' && Math.random() < value) return answer(res, 500, 'injected error');
    for (const step of steps) {
      if (!(await runStep(step, args.dataDir))) {
        const what = step.kind === 'http' ? `${step.host}:${step.port}${step.path}` : step.kind;
        return answer(res, 502, `downstream failed: ${what}`);
      }
    }
    answer(res, 200, 'ok');
  });
  server.keepAliveTimeout = 0;
  server.on('error', (e) => {
    process.stderr.write(`service.js: ${args.listen}: ${e.message}\n`);
    process.exit(1);
  });
  server.listen(port, host, 511, () => process.stdout.write('ready\n'));
}

main();
