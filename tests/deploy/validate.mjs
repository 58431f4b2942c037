// Validates Kubernetes manifests offline against the Kubernetes API's own types, strictly.
//
//   node validate.mjs --modules DIR check FILE...        every object of every YAML file
//   node validate.mjs --modules DIR same A.yaml FILE...   A holds the objects of the FILEs
//   node validate.mjs --modules DIR values values.yaml   every value documented ("Default: X")
//
// DIR is the node_modules folder validate.sh installed from package-lock.json. Each object is
// checked by two validators that share no code with this repository:
//  - schema: kubernetes-models' JSON-schema validators (ajv, generated from the Kubernetes
//    OpenAPI definitions): types, formats, enums and required fields. They let unknown fields
//    through (the generated schemas have no additionalProperties: false), hence:
//  - strict: the TypeScript compiler checks the object as a literal of its kubernetes-types type
//    (generated from the same OpenAPI definitions, Kubernetes 1.30): an unknown field is an error
//    (excess property check), and so is a value of the wrong type or a missing required field.
// A kind with no types at all is an error. ServiceMonitor (prometheus-operator's CRD) has only
// the schema validator: its unknown fields are not caught (said in the summary).
// Every error is one line: FILE: KIND/NAME: field.path: message [validator].
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const args = process.argv.slice(2);
let modules = null;
if (args[0] === '--modules') {
  modules = path.resolve(args[1]);
  args.splice(0, 2);
}
if (!modules || args.length < 2) {
  console.error('usage: node validate.mjs --modules NODE_MODULES check|same|values FILE...');
  process.exit(2);
}
const require = createRequire(path.join(modules, 'index.js'));
const YAML = require('yaml');

// ---- reading ------------------------------------------------------------------------------

// Every document of a YAML file, with the template it came from when Helm's renderer says so
// ("# Source: chart/templates/x.yaml").
function readDocuments(file) {
  const text = fs.readFileSync(file, 'utf8');
  const docs = [];
  let source = null; // a template's later documents carry no "# Source:" of their own
  YAML.parseAllDocuments(text, { uniqueKeys: true }).forEach((doc, i) => {
    const problems = [...doc.errors, ...doc.warnings];
    const comment = `${doc.commentBefore ?? ''}\n${doc.contents?.commentBefore ?? ''}`;
    source = /^ ?Source: (.*)$/m.exec(comment)?.[1] ?? source;
    const where = source ? `${file} (${source})` : docsLabel(file, i);
    if (problems.length) {
      docs.push({ where, error: problems.map((e) => e.message.split('\n')[0]).join('; ') });
      return;
    }
    const obj = doc.toJS();
    if (obj !== null && obj !== undefined) docs.push({ where, obj });
  });
  return docs;
}
const docsLabel = (file, i) => (i === 0 ? file : `${file} (document ${i + 1})`);

const nameOf = (obj) => `${obj?.kind ?? '?'}/${obj?.metadata?.name ?? '?'}`;
const jsonPath = (segments) =>
  segments.reduce((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${k}` : k), '') || '(object)';

// ---- the schema validator: kubernetes-models ----------------------------------------------

function schemaModel(apiVersion, kind) {
  const candidates =
    apiVersion === 'monitoring.coreos.com/v1'
      ? [`@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}`]
      : [`kubernetes-models/${apiVersion}/${kind}`];
  for (const id of candidates) {
    try {
      const mod = require(id);
      if (mod[kind]) return mod[kind];
    } catch {
      /* next */
    }
  }
  return null;
}

function schemaErrors(obj) {
  const Model = schemaModel(obj.apiVersion, obj.kind);
  if (!Model) return null;
  try {
    new Model(obj).validate();
    return [];
  } catch (e) {
    if (!Array.isArray(e.errors)) return [{ path: '(object)', message: String(e.message ?? e) }];
    return e.errors.map((err) => {
      const segments = err.instancePath.split('/').slice(1).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
      if (err.keyword === 'required') segments.push(err.params.missingProperty);
      if (err.keyword === 'additionalProperties') segments.push(err.params.additionalProperty);
      return { path: jsonPath(segments), message: err.message };
    });
  }
}

// ---- the strict validator: TypeScript and kubernetes-types --------------------------------

const GROUP_MODULE = {
  v1: 'core/v1',
  'apps/v1': 'apps/v1',
  'batch/v1': 'batch/v1',
  'policy/v1': 'policy/v1',
  'rbac.authorization.k8s.io/v1': 'rbac/v1',
  'networking.k8s.io/v1': 'networking/v1',
  'scheduling.k8s.io/v1': 'scheduling/v1',
};

// Writes obj as a TypeScript literal, one property or element a line, and remembers the field
// path of every line, so that the line of a diagnostic names the field. The compiler reports one
// error per assignment, so a field already reported is silenced in the next round: an unknown
// key is left out, a wrong value is cast to any.
function literal(obj, silenced) {
  const lines = [];
  const paths = [];
  const emit = (key, value, segments, indent, suffix) => {
    const id = jsonPath(segments);
    if (silenced.get(id) === 'drop') return;
    const pad = '  '.repeat(indent);
    const prefix = key === null ? '' : `${/^[A-Za-z_$][\w$]*$/.test(key) ? key : JSON.stringify(key)}: `;
    if (silenced.get(id) === 'any') {
      lines.push(`${pad}${prefix}(${JSON.stringify(value) ?? 'undefined'} as any)${suffix}`);
      paths.push(segments);
    } else if (Array.isArray(value) && value.length) {
      lines.push(`${pad}${prefix}[`);
      paths.push(segments);
      value.forEach((v, i) => emit(null, v, [...segments, i], indent + 1, ','));
      lines.push(`${pad}]${suffix}`);
      paths.push(segments);
    } else if (value && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length) {
      lines.push(`${pad}${prefix}{`);
      paths.push(segments);
      for (const [k, v] of Object.entries(value)) emit(k, v, [...segments, k], indent + 1, ',');
      lines.push(`${pad}}${suffix}`);
      paths.push(segments);
    } else {
      lines.push(`${pad}${prefix}${JSON.stringify(value) ?? 'undefined'}${suffix}`);
      paths.push(segments);
    }
  };
  emit(null, obj, [], 1, ';');
  return { lines, paths };
}

// TypeScript diagnostics of excess properties (an unknown field).
const EXCESS = new Set([2353, 2561]);

function strictErrors(docs) {
  const ts = require('typescript');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faultline-deploy-'));
  let units = [];
  for (const d of docs) {
    const mod = GROUP_MODULE[d.obj.apiVersion];
    if (!mod || !/^[A-Z][A-Za-z0-9]*$/.test(String(d.obj.kind))) continue;
    d.strict = [];
    units.push({ doc: d, silenced: new Map() });
  }
  try {
    for (let round = 0; units.length && round < 20; round++) {
      units.forEach((u, i) => {
        const { lines, paths } = literal(u.doc.obj, u.silenced);
        const header = [
          `import type { ${u.doc.obj.kind} as T } from ${JSON.stringify(path.join(modules, 'kubernetes-types', GROUP_MODULE[u.doc.obj.apiVersion]))};`,
          'export const object: T =',
        ];
        u.file = path.resolve(dir, `object${i}.ts`);
        u.first = header.length;
        u.paths = paths;
        u.found = false;
        fs.writeFileSync(u.file, [...header, ...lines, ''].join('\n'));
      });
      const program = ts.createProgram(
        units.map((u) => u.file),
        { strict: true, noEmit: true, skipLibCheck: true, types: [], lib: ['lib.es2020.d.ts'], target: ts.ScriptTarget.ES2020 },
      );
      const byFile = new Map(units.map((u) => [u.file, u]));
      for (const diag of ts.getPreEmitDiagnostics(program)) {
        const unit = diag.file && byFile.get(path.resolve(diag.file.fileName));
        const message = ts.flattenDiagnosticMessageText(diag.messageText, ' ').replace(/\s+/g, ' ');
        if (!unit) {
          console.error(`validate: TypeScript: ${message}`);
          process.exitCode = 2;
          continue;
        }
        const line = diag.file.getLineAndCharacterOfPosition(diag.start ?? 0).line;
        const segments = unit.paths[line - unit.first] ?? [];
        const id = jsonPath(segments);
        if (unit.silenced.has(id)) continue;
        unit.silenced.set(id, EXCESS.has(diag.code) ? 'drop' : 'any');
        unit.doc.strict.push({ path: id, message });
        unit.found = true;
      }
      units = units.filter((u) => u.found);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---- check ---------------------------------------------------------------------------------

function check(files) {
  const docs = files.flatMap(readDocuments);
  let errors = 0;
  const report = (d, p, message, validator) => {
    errors++;
    console.log(`${d.where}: ${nameOf(d.obj)}: ${p}: ${message} [${validator}]`);
  };
  const objects = docs.filter((d) => !d.error);
  for (const d of docs.filter((x) => x.error)) {
    errors++;
    console.log(`${d.where}: YAML: ${d.error}`);
  }
  strictErrors(objects.filter((d) => d.obj && typeof d.obj === 'object'));
  const schemaOnly = new Set();
  for (const d of objects) {
    if (typeof d.obj !== 'object' || Array.isArray(d.obj)) {
      report(d, '(object)', 'not a Kubernetes object', 'schema');
      continue;
    }
    const schema = schemaErrors(d.obj);
    if (schema === null && !d.strict) {
      report(d, 'apiVersion', `no schema for ${d.obj.apiVersion} ${d.obj.kind}`, 'schema');
      continue;
    }
    if (!d.strict) schemaOnly.add(`${d.obj.apiVersion} ${d.obj.kind}`);
    for (const e of schema ?? []) report(d, e.path, e.message, 'schema');
    for (const e of d.strict ?? []) report(d, e.path, e.message, 'strict');
  }
  const kinds = new Set(objects.map((d) => d.obj?.kind));
  console.log(
    `validate: ${objects.length} objects (${[...kinds].sort().join(', ')}) in ${files.length} files: ${errors} errors` +
      (schemaOnly.size ? `; unknown fields not checked for ${[...schemaOnly].join(', ')} (no types)` : ''),
  );
  return errors ? 1 : 0;
}

// ---- same: the chart renders the plain manifests ------------------------------------------

// Helm's bookkeeping, which the plain manifests do not carry.
function normalize(obj) {
  const o = structuredClone(obj);
  const strip = (meta) => {
    if (!meta) return;
    for (const k of ['helm.sh/chart', 'app.kubernetes.io/managed-by']) delete meta.labels?.[k];
    delete meta.annotations?.['checksum/config'];
    if (meta.annotations && !Object.keys(meta.annotations).length) delete meta.annotations;
  };
  strip(o.metadata);
  strip(o.spec?.template?.metadata);
  return o;
}

function canonical(v) {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
  return v;
}

function same(a, files) {
  const load = (f) => {
    const m = new Map();
    for (const d of readDocuments(f)) {
      if (d.error) throw new Error(`${d.where}: ${d.error}`);
      m.set(`${d.obj.kind}/${d.obj.metadata?.namespace ?? ''}/${d.obj.metadata?.name}`, JSON.stringify(canonical(normalize(d.obj))));
    }
    return m;
  };
  const b = files.join(' ');
  const mb = new Map();
  for (const f of files) for (const [k, v] of load(f)) mb.set(k, v);
  const ma = load(a);
  let diffs = 0;
  for (const k of new Set([...ma.keys(), ...mb.keys()])) {
    if (!ma.has(k)) console.log(`same: ${k}: only in ${b}`);
    else if (!mb.has(k)) console.log(`same: ${k}: only in ${a}`);
    else if (ma.get(k) !== mb.get(k)) {
      const [x, y] = [JSON.parse(ma.get(k)), JSON.parse(mb.get(k))];
      console.log(`same: ${k}: differs at ${firstDifference(x, y, [])}`);
    } else continue;
    diffs++;
  }
  console.log(`same: ${ma.size} objects against ${mb.size}: ${diffs} differ`);
  return diffs ? 1 : 0;
}

function firstDifference(x, y, segments) {
  if (x && y && typeof x === 'object' && typeof y === 'object') {
    for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
      if (JSON.stringify(x[k]) !== JSON.stringify(y[k])) return firstDifference(x[k], y[k], [...segments, Array.isArray(x) ? Number(k) : k]);
    }
  }
  return `${jsonPath(segments)} (${JSON.stringify(x)?.slice(0, 80)} against ${JSON.stringify(y)?.slice(0, 80)})`;
}

// ---- values: every value documented ------------------------------------------------------

// Every key of values.yaml is a value a user sets, documented by the comment right above it,
// whose last line is "Default: X"; a key without one must be a map of such keys (a section).
function values(file) {
  const doc = YAML.parseDocument(fs.readFileSync(file, 'utf8'));
  let missing = 0;
  let count = 0;
  const walk = (node, segments) => {
    node.items.forEach((pair, i) => {
      const key = [...segments, String(pair.key.value)];
      // The yaml library gives a map's first key's comment to the map.
      const comment = ((i === 0 ? node.commentBefore : '') || pair.key.commentBefore || '').trim();
      if (/(^|\n) *Default: \S[^\n]*$/.test(comment)) {
        count++;
      } else if (YAML.isMap(pair.value) && pair.value.items.length) {
        walk(pair.value, key);
      } else {
        count++;
        missing++;
        console.log(`${file}: ${key.join('.')}: no comment ending "Default: X"`);
      }
    });
  };
  walk(doc.contents, []);
  console.log(`values: ${count} values, ${missing} undocumented`);
  return missing ? 1 : 0;
}

const [command, ...rest] = args;
const code = command === 'check' ? check(rest) : command === 'same' ? same(rest[0], rest.slice(1)) : command === 'values' ? values(rest[0]) : 2;
process.exit(Math.max(code, process.exitCode ?? 0));
