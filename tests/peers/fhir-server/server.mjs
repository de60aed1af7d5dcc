#!/usr/bin/env node
// FHIR R4 test peer for Vigil: @medplum/fhir-router over an in-memory repository, wrapped with
// the validation, atomicity, fault injection and SMART Backend Services auth that the router
// does not provide. See README.md for the HTTP surface.
//
//   node server.mjs --port 0 [--smart] [--client-id ID --public-key-file PEM] [--token-ttl SECS]
//
// Prints exactly one line to stdout when ready: "fhir-server listening on http://127.0.0.1:PORT".
// Everything else goes to stderr.
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';
import { allOk, getAllDataTypes, getSearchParameter, getStatus, isOk, isResourceType, isResourceTypeSchema } from '@medplum/core';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { SmartAuth } from './smart.mjs';
import { formatIssue, initValidation, knownProfiles, unusableProfileReasons, validateFhirResource } from './validation.mjs';

const FHIR_BASE = '/fhir/R4';
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const MAX_BODY_BYTES = 20 * 1024 * 1024;
const JSON_TYPES = /^application\/(fhir\+json|json|json\+fhir)\b/i;

// ---------------------------------------------------------------------------------------------
// Options

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.FHIR_SERVER_PORT ?? '0' },
    smart: { type: 'boolean', default: /^(1|true|yes)$/i.test(process.env.FHIR_SERVER_SMART ?? '') },
    'client-id': { type: 'string', default: process.env.FHIR_SERVER_CLIENT_ID },
    'public-key-file': { type: 'string', default: process.env.FHIR_SERVER_PUBLIC_KEY_FILE },
    'client-scope': { type: 'string', default: process.env.FHIR_SERVER_CLIENT_SCOPE },
    'token-ttl': { type: 'string', default: process.env.FHIR_SERVER_TOKEN_TTL ?? '300' },
    profiles: { type: 'string', multiple: true, default: [] },
    quiet: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});

if (args.help) {
  process.stderr.write(readFileSync(new URL('./README.md', import.meta.url), 'utf8'));
  process.exit(0);
}

const port = Number(args.port);
const tokenTtl = Number(args['token-ttl']);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  fail(`--port must be 0..65535, got ${args.port}`);
}
if (!Number.isInteger(tokenTtl) || tokenTtl <= 0) {
  fail(`--token-ttl must be a positive integer, got ${args['token-ttl']}`);
}
if (Boolean(args['client-id']) !== Boolean(args['public-key-file'])) {
  fail('--client-id and --public-key-file go together');
}

function fail(message) {
  process.stderr.write(`fhir-server: ${message}\n`);
  process.exit(2);
}

function log(message) {
  if (!args.quiet) {
    process.stderr.write(`[fhir-server] ${message}\n`);
  }
}

// ---------------------------------------------------------------------------------------------
// Repository with snapshot/rollback
//
// medplum's MemoryRepository.withTransaction just runs the callback, so a transaction that fails
// half-way leaves its first writes behind. We serialize every FHIR request (below) and snapshot the
// two maps the repository keeps, so a failed transaction or an invalid PATCH can be undone exactly.
// This reaches into fields that are TypeScript-private in @medplum/fhir-router 4.5.2; the
// constructor check makes an upgrade that renames them fail loudly instead of silently not rolling back.

class SnapshotRepository extends MemoryRepository {
  constructor() {
    super();
    if (!(this.resources instanceof Map) || !(this.history instanceof Map)) {
      throw new Error('MemoryRepository internals changed (resources/history maps); update SnapshotRepository');
    }
  }

  snapshot() {
    // Stored resources are never mutated in place (reads return deep clones), so copying the
    // containers is enough.
    const copy = (outer, inner) => new Map([...outer].map(([k, v]) => [k, new Map([...v].map(([id, x]) => [id, inner(x)]))]));
    return { resources: copy(this.resources, (r) => r), history: copy(this.history, (h) => h.slice()) };
  }

  restore(snap) {
    for (const name of ['resources', 'history']) {
      this[name].clear();
      for (const [k, v] of snap[name]) {
        this[name].set(k, v);
      }
    }
  }

  async readHistory(resourceType, id) {
    // medplum 4.5.2 reverses the stored history array in place on every read, so reading twice
    // flips the order; restore it afterwards.
    const stored = this.history.get(resourceType)?.get(id);
    const saved = stored?.slice();
    try {
      return await super.readHistory(resourceType, id);
    } finally {
      if (stored) {
        stored.splice(0, stored.length, ...saved);
      }
    }
  }

  allResources() {
    const out = {};
    for (const [type, byId] of this.resources) {
      if (byId.size) {
        out[type] = [...byId.values()].map((r) => structuredClone(r));
      }
    }
    return out;
  }
}

// One request at a time: makes conditional create race-free (as a real server's serializable
// transaction would) and makes snapshot/rollback safe.
let queueTail = Promise.resolve();
function exclusive(fn) {
  const run = queueTail.then(fn, fn);
  queueTail = run.catch(() => {});
  return run;
}

// ---------------------------------------------------------------------------------------------
// State

initValidation({ extraProfileFiles: args.profiles });
log(`validating against R4 base types and ${knownProfiles().length} profiles`);
for (const [url, why] of unusableProfileReasons()) {
  log(`profile ${url} cannot be used: ${why}`);
}
const repo = new SnapshotRepository();
const router = new FhirRouter();
let baseUrl = ''; // set once listening
const auth = new SmartAuth({ tokenTtl, log });
if (args['client-id']) {
  auth.registerClient(args['client-id'], {
    pem: readFileSync(args['public-key-file'], 'utf8'),
    scope: args['client-scope'],
  });
}

let rejectRules = [];
let stats = newStats();
const warnedProfiles = new Set();

function newStats() {
  return { requests_total: 0, requests: {}, created: {}, validation_failures: 0, control_rejections: 0, rolled_back_transactions: 0, auth_failures: 0 };
}

function count(map, key, n = 1) {
  map[key] = (map[key] ?? 0) + n;
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

class HttpError extends Error {
  constructor(status, outcome) {
    super(outcome.issue?.[0]?.details?.text ?? `HTTP ${status}`);
    this.status = status;
    this.outcome = outcome;
  }
}

function outcome(severity, code, text, extra = {}) {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, details: { text }, ...extra }] };
}

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...(body === undefined ? {} : { 'Content-Type': headers['Content-Type'] ?? FHIR_JSON }),
    ...headers,
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      throw new HttpError(413, outcome('error', 'too-costly', `Request body larger than ${MAX_BODY_BYTES} bytes`));
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJsonBody(req) {
  const text = await readBody(req);
  const type = req.headers['content-type'] ?? '';
  if (!JSON_TYPES.test(type)) {
    throw new HttpError(415, outcome('error', 'not-supported', `Content-Type must be application/fhir+json, got ${JSON.stringify(type)}`));
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, outcome('error', 'structure', `Body is not valid JSON: ${err.message}`));
  }
}

const server = http.createServer((req, res) => {
  const started = Date.now();
  handle(req, res)
    .catch((err) => {
      if (err instanceof HttpError) {
        send(res, err.status, err.outcome);
      } else {
        log(`internal error: ${err?.stack ?? err}`);
        send(res, 500, outcome('error', 'exception', `Internal error: ${err?.message ?? err}`));
      }
    })
    .finally(() => log(`${req.method} ${req.url} -> ${res.statusCode} (${Date.now() - started} ms)`));
});

async function handle(req, res) {
  const url = new URL(req.url, baseUrl);
  const path = url.pathname.replace(/\/+$/, '') || '/';
  if (path.startsWith('/__control')) {
    return control(req, res, path.slice('/__control'.length));
  }
  if (path === '/auth/token') {
    return tokenEndpoint(req, res);
  }
  if (path === FHIR_BASE || path.startsWith(`${FHIR_BASE}/`)) {
    return fhir(req, res, path.slice(FHIR_BASE.length) || '/', url.search);
  }
  throw new HttpError(404, outcome('error', 'not-found', `No route for ${req.method} ${path}; the FHIR base is ${baseUrl}${FHIR_BASE}`));
}

// ---------------------------------------------------------------------------------------------
// Test controls

async function control(req, res, sub) {
  const route = `${req.method} ${sub}`;
  switch (route) {
    case 'GET /stats':
      return send(res, 200, { ...structuredClone(stats), reject_rules: rejectRules.length, ...auth.snapshotStats() }, { 'Content-Type': 'application/json' });
    case 'POST /reset':
      await exclusive(async () => {
        repo.clear();
        rejectRules = [];
        stats = newStats();
      });
      log('control: repository, reject rules and stats reset');
      return send(res, 200, { reset: true }, { 'Content-Type': 'application/json' });
    case 'GET /resources':
      return send(res, 200, await exclusive(async () => repo.allResources()), { 'Content-Type': 'application/json' });
    case 'GET /reject':
      return send(res, 200, { rules: rejectRules }, { 'Content-Type': 'application/json' });
    case 'POST /reject': {
      const body = await readControlJson(req);
      const rule = {
        subjectReference: body.subjectReference,
        identifierValue: body.identifierValue,
        status: body.status ?? 422,
        text: body.text ?? 'Rejected by test control',
      };
      if (typeof rule.subjectReference !== 'string' && typeof rule.identifierValue !== 'string') {
        return send(res, 400, { error: 'subjectReference or identifierValue (string) is required' }, { 'Content-Type': 'application/json' });
      }
      if (!Number.isInteger(rule.status) || rule.status < 400 || rule.status > 599) {
        return send(res, 400, { error: 'status must be an HTTP error status (400..599)' }, { 'Content-Type': 'application/json' });
      }
      rejectRules.push(rule);
      log(`control: reject rule added ${JSON.stringify(rule)}`);
      return send(res, 200, { rules: rejectRules }, { 'Content-Type': 'application/json' });
    }
    case 'DELETE /reject':
      rejectRules = [];
      log('control: reject rules cleared');
      return send(res, 200, { rules: [] }, { 'Content-Type': 'application/json' });
    case 'POST /clients': {
      const body = await readControlJson(req);
      try {
        const registered = auth.registerClient(body.client_id, { pem: body.public_key_pem, jwk: body.jwk, scope: body.scope });
        return send(res, 201, registered, { 'Content-Type': 'application/json' });
      } catch (err) {
        return send(res, 400, { error: err.message }, { 'Content-Type': 'application/json' });
      }
    }
    default:
      return send(res, 404, { error: `unknown control ${route}` }, { 'Content-Type': 'application/json' });
  }
}

async function readControlJson(req) {
  const text = await readBody(req);
  try {
    const body = text ? JSON.parse(text) : {};
    if (body && typeof body === 'object' && !Array.isArray(body)) {
      return body;
    }
  } catch {
    // fall through
  }
  throw new HttpError(400, outcome('error', 'structure', 'control body must be a JSON object'));
}

/** The reject rule that applies to a resource, if any. */
function matchRejectRule(resource) {
  if (!resource || typeof resource !== 'object') {
    return undefined;
  }
  const identifiers = [resource.identifier].flat().filter(Boolean);
  return rejectRules.find(
    (r) =>
      (r.subjectReference !== undefined && resource.subject?.reference === r.subjectReference) ||
      (r.identifierValue !== undefined && identifiers.some((i) => i?.value === r.identifierValue))
  );
}

function rejectionOutcome(rule) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'processing', diagnostics: rule.text, details: { text: rule.text } }] };
}

// ---------------------------------------------------------------------------------------------
// SMART token endpoint

async function tokenEndpoint(req, res) {
  const json = { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', Pragma: 'no-cache' };
  if (!args.smart) {
    return send(res, 404, { error: 'invalid_request', error_description: 'SMART auth is not enabled (start with --smart)' }, json);
  }
  if (req.method !== 'POST') {
    return send(res, 405, { error: 'invalid_request', error_description: 'use POST' }, { ...json, Allow: 'POST' });
  }
  const text = await readBody(req);
  if (!/^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')) {
    return send(res, 400, { error: 'invalid_request', error_description: 'Content-Type must be application/x-www-form-urlencoded', check: 'content_type' }, json);
  }
  // The aud must be the token URL; accept it under the Host the client actually used too
  // (127.0.0.1 vs localhost), since both reach this server.
  const tokenUrls = [`${baseUrl}/auth/token`];
  if (req.headers.host) {
    tokenUrls.push(`http://${req.headers.host}/auth/token`);
  }
  const result = auth.token(new URLSearchParams(text), tokenUrls);
  return send(res, result.status, result.body, json);
}

// ---------------------------------------------------------------------------------------------
// FHIR

const ACTION_BY_METHOD = { GET: 'r', POST: 'c', PUT: 'u', PATCH: 'u', DELETE: 'd' };

async function fhir(req, res, rel, search) {
  const segments = rel.split('/').filter(Boolean);
  const type = segments[0];
  const method = req.method;
  // Bundles are counted as "POST transaction"/"POST batch" once their type is known.
  if (type || method !== 'POST') {
    count(stats.requests, `${method} ${type ?? '/'}`);
  }
  stats.requests_total += 1;

  if (method === 'GET' && rel === '/metadata') {
    return send(res, 200, capabilityStatement());
  }
  if (method === 'GET' && rel === '/.well-known/smart-configuration') {
    if (!args.smart) {
      throw new HttpError(404, outcome('error', 'not-found', 'SMART auth is not enabled'));
    }
    return send(res, 200, smartConfiguration(), { 'Content-Type': 'application/json' });
  }

  let token;
  if (args.smart) {
    const result = auth.authenticate(req.headers.authorization);
    if (!result.ok) {
      stats.auth_failures += 1;
      return send(res, 401, outcome('error', 'login', `Unauthorized: ${result.reason}`), {
        'WWW-Authenticate': `Bearer realm="fhir", error="invalid_token", error_description="${result.reason}"`,
      });
    }
    token = result.token;
  }

  if (type && !type.startsWith('$') && !type.startsWith('_') && !isResourceType(type)) {
    throw new HttpError(400, outcome('error', 'not-supported', `Unknown resource type "${type}"`));
  }
  if (!['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) {
    throw new HttpError(405, outcome('error', 'not-supported', `Method ${method} not supported`));
  }
  const isPostSearch = method === 'POST' && segments[1] === '_search';
  let body;
  if (isPostSearch) {
    // FHIR search by POST sends the parameters form-encoded; medplum wants them as a query record.
    body = Object.fromEntries(new URLSearchParams(await readBody(req)));
  } else if (['POST', 'PUT', 'PATCH'].includes(method)) {
    body = await readJsonBody(req);
  }

  if (type && isResourceType(type) && segments.length === 1 && (method === 'GET' || (method === 'PUT' && search) || method === 'DELETE')) {
    checkSearchParameters(type, search, 'url');
  }
  if (isPostSearch) {
    checkSearchParameters(type, new URLSearchParams(body).toString(), 'body');
  }
  if (method === 'POST' && segments.length === 1 && req.headers['if-none-exist']) {
    checkSearchParameters(type, String(req.headers['if-none-exist']), 'If-None-Exist');
  }

  if (token && type) {
    const action = isPostSearch ? 's' : method === 'GET' && segments.length === 1 ? 's' : ACTION_BY_METHOD[method];
    requireScope(token, type, action);
  }

  const request = {
    method,
    url: `${rel}${method === 'GET' && segments.length === 1 ? normalizeReferenceSearch(type, search) : search}`,
    pathname: '', // handleRequest refuses a pre-set pathname; it derives it from url
    body,
    params: {},
    query: {},
    headers: req.headers,
    // transactions:false makes medplum process every Bundle entry-by-entry and report per-entry
    // results; we add the all-or-nothing behaviour ourselves (see transaction()). With true it
    // also refuses any transaction with >8 entries that uses ifNoneExist ("requires strict
    // isolation") and >50 updates, limits that are medplum's, not FHIR's.
    config: { transactions: false },
  };

  if (method === 'POST' && segments.length === 0) {
    return transaction(res, token, request, body);
  }
  if ((method === 'POST' && segments.length === 1) || method === 'PUT') {
    return write(req, res, request, type, segments);
  }
  if (method === 'PATCH') {
    return patch(req, res, request);
  }
  const [oo, resource] = await exclusive(() => router.handleRequest(request, repo));
  const status = getStatus(oo);
  if (!isOk(oo)) {
    return send(res, status, oo);
  }
  if (resource?.resourceType === 'Bundle' && resource.type === 'searchset') {
    return send(res, status, decorateSearchset(resource, `${baseUrl}${FHIR_BASE}${rel}`, search));
  }
  return sendResource(req, res, status, oo, resource);
}

function requireScope(token, type, action) {
  if (!SmartAuth.allows(token, type, action)) {
    throw new HttpError(403, outcome('error', 'forbidden', `Token scopes do not allow "${action}" on ${type} (granted: ${token.scopes.map((s) => s.text).join(' ')})`));
  }
}

// Parameters that are not SearchParameters but control the result.
const RESULT_PARAMETERS = new Set(['_count', '_offset', '_sort', '_total', '_summary', '_elements', '_include', '_revinclude', '_format', '_pretty', '_filter', '_fields']);

/**
 * medplum's in-memory search treats an unknown parameter as "matches nothing" rather than an error,
 * so a misspelt If-None-Exist would silently create duplicates. Refuse it, as HAPI does by default.
 */
function checkSearchParameters(type, query, where) {
  for (const name of new URLSearchParams(query).keys()) {
    const code = name.split(/[:.]/)[0];
    if (!RESULT_PARAMETERS.has(code) && !getSearchParameter(type, code)) {
      throw new HttpError(400, outcome('error', 'not-supported', `Unknown search parameter "${code}" for ${type}`, { expression: [where] }));
    }
  }
}

/**
 * medplum's in-memory search only matches reference parameters given as "Type/id"; FHIR also allows
 * a bare id when the parameter has one target type (Observation?patient=123) and the
 * ":Type" modifier (subject:Patient=123). Rewrite those to "Type/id".
 */
function normalizeReferenceSearch(type, search) {
  if (!search) {
    return search;
  }
  const params = new URLSearchParams(search);
  const out = new URLSearchParams();
  for (const [name, value] of params) {
    const [code, modifier] = name.split(':');
    const sp = getSearchParameter(type, code);
    const targets = sp?.type === 'reference' ? (sp.target ?? []) : [];
    const targetType = modifier && isResourceType(modifier) ? modifier : targets.length === 1 ? targets[0] : undefined;
    if (targetType && !name.includes('.') && /^[A-Za-z0-9\-.]{1,64}$/.test(value) && !value.includes('/')) {
      out.append(code, `${targetType}/${value}`);
    } else {
      out.append(name, value);
    }
  }
  return `?${out}`;
}

/** Validation + reject rules for one resource about to be written; returns an HttpError or undefined. */
function checkIncoming(resource, where) {
  const result = validateFhirResource(resource);
  for (const p of result.profilesUnknown) {
    if (!warnedProfiles.has(p)) {
      warnedProfiles.add(p);
      log(`warning: meta.profile ${p} is not known to this server; not validated against it`);
    }
  }
  if (!result.valid) {
    stats.validation_failures += 1;
    const issues = [...result.errors, ...result.warnings].map((i) => (where ? prefixIssue(i, where, resource?.resourceType) : i));
    log(`validation failed${where ? ` at ${where}` : ''}: ${result.errors.map(formatIssue).join('; ')}`);
    return new HttpError(400, { resourceType: 'OperationOutcome', issue: issues });
  }
  const rule = matchRejectRule(resource);
  if (rule) {
    stats.control_rejections += 1;
    log(`rejected by control rule${where ? ` at ${where}` : ''}: ${rule.status} ${rule.text}`);
    const oo = rejectionOutcome(rule);
    if (where) {
      oo.issue[0].expression = [where];
    }
    return new HttpError(rule.status, oo);
  }
  return undefined;
}

function prefixIssue(i, where, resourceType) {
  const fix = (e) => (resourceType && e.startsWith(resourceType) ? `${where}${e.slice(resourceType.length)}` : `${where}.${e}`);
  return { ...i, expression: i.expression?.map(fix) ?? [where] };
}

async function write(req, res, request, type, segments) {
  const body = request.body;
  if (body?.resourceType !== type) {
    throw new HttpError(400, outcome('error', 'invalid', `Body resourceType ${JSON.stringify(body?.resourceType)} does not match the URL type ${type}`));
  }
  if (req.method === 'PUT' && segments[1] !== undefined && body.id !== segments[1]) {
    throw new HttpError(400, outcome('error', 'invalid', `Body id ${JSON.stringify(body.id)} does not match the URL id ${segments[1]}`));
  }
  if (req.method === 'POST') {
    // The server assigns ids on create; medplum's MemoryRepository would otherwise keep (and
    // overwrite by) a client-supplied id.
    delete body.id;
  }
  const problem = checkIncoming(body);
  if (problem) {
    throw problem;
  }
  const [oo, resource] = await exclusive(async () => {
    const existed = req.method === 'PUT' && segments[1] ? await repo.readResource(type, segments[1]).then(() => true, () => false) : true;
    const result = await router.handleRequest(request, repo);
    // FHIR: update-as-create answers 201; medplum answers 200 either way.
    return !existed && isOk(result[0]) ? [{ ...result[0], id: 'created' }, result[1]] : result;
  });
  const status = getStatus(oo);
  if (status === 201) {
    count(stats.created, type);
  }
  if (!isOk(oo)) {
    return send(res, status, oo);
  }
  return sendResource(req, res, status, oo, resource);
}

async function patch(req, res, request) {
  // The patched result is only known after applying it, so validate afterwards and roll back.
  const [oo, resource, problem] = await exclusive(async () => {
    const snap = repo.snapshot();
    const [o, r] = await router.handleRequest(request, repo);
    const p = isOk(o) && r ? checkIncoming(r) : undefined;
    if (p) {
      repo.restore(snap);
    }
    return [o, r, p];
  });
  if (problem) {
    throw problem;
  }
  if (!isOk(oo)) {
    return send(res, getStatus(oo), oo);
  }
  return sendResource(req, res, getStatus(oo), oo, resource);
}

function sendResource(req, res, status, oo, resource) {
  const headers = {};
  if (resource?.id && resource.meta?.versionId) {
    headers.ETag = `W/"${resource.meta.versionId}"`;
    if (resource.meta.lastUpdated) {
      headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
    }
    if (status === 201) {
      headers.Location = `${baseUrl}${FHIR_BASE}/${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
    }
  }
  const prefer = String(req.headers.prefer ?? '');
  if (/return=minimal/.test(prefer)) {
    return send(res, status, undefined, headers);
  }
  if (/return=OperationOutcome/i.test(prefer)) {
    return send(res, status, oo, headers);
  }
  return send(res, status, resource ?? oo, headers);
}

function decorateSearchset(bundle, selfBase, search) {
  const params = new URLSearchParams(search);
  const out = {
    resourceType: 'Bundle',
    type: 'searchset',
    total: bundle.total ?? bundle.entry?.length ?? 0,
    link: [{ relation: 'self', url: `${selfBase}${search}` }],
    entry: (bundle.entry ?? []).map((e) => ({
      fullUrl: `${baseUrl}${FHIR_BASE}/${e.resource.resourceType}/${e.resource.id}`,
      resource: e.resource,
      search: { mode: 'match' },
    })),
  };
  const countParam = Number(params.get('_count'));
  const offset = Number(params.get('_offset') ?? 0);
  if (countParam > 0 && offset + countParam < out.total) {
    params.set('_offset', String(offset + countParam));
    out.link.push({ relation: 'next', url: `${selfBase}?${params}` });
  }
  if (!out.entry.length) {
    delete out.entry;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// transaction / batch

async function transaction(res, token, request, bundle) {
  if (bundle?.resourceType !== 'Bundle') {
    count(stats.requests, 'POST /');
    throw new HttpError(400, outcome('error', 'invalid', 'POST to the base needs a Bundle'));
  }
  if (bundle.type !== 'transaction' && bundle.type !== 'batch') {
    count(stats.requests, 'POST /');
    throw new HttpError(400, outcome('error', 'invalid', `Bundle.type must be transaction or batch, got ${JSON.stringify(bundle.type)}`));
  }
  const isTransaction = bundle.type === 'transaction';
  const entries = bundle.entry ?? [];
  count(stats.requests, `POST ${bundle.type}`);
  for (const e of entries) {
    count(stats.requests, `${e?.request?.method} ${String(e?.request?.url).split(/[/?]/)[0]} (in ${bundle.type})`);
  }
  if (!entries.length) {
    return send(res, 200, { resourceType: 'Bundle', type: `${bundle.type}-response`, entry: [] });
  }

  // 1. Check every entry before writing anything.
  const problems = new Map(); // entry index -> HttpError
  const fullUrls = new Set();
  const placeholders = new Set(entries.map((e) => e?.fullUrl).filter((u) => /^urn:(uuid|oid):/.test(u ?? '')));
  entries.forEach((entry, i) => {
    const where = `Bundle.entry[${i}]`;
    const method = entry?.request?.method;
    const url = entry?.request?.url;
    if (!method || !url) {
      problems.set(i, new HttpError(400, outcome('error', 'required', 'request.method and request.url are required', { expression: [`${where}.request`] })));
      return;
    }
    if (isTransaction && entry.fullUrl) {
      if (fullUrls.has(entry.fullUrl)) {
        problems.set(i, new HttpError(400, outcome('error', 'invalid', `Duplicate fullUrl ${entry.fullUrl}`, { expression: [`${where}.fullUrl`] })));
        return;
      }
      fullUrls.add(entry.fullUrl);
    }
    const entryType = url.split(/[/?]/)[0];
    if (token) {
      try {
        requireScope(token, entryType, method === 'GET' && !url.includes('/') ? 's' : ACTION_BY_METHOD[method]);
      } catch (err) {
        problems.set(i, err);
        return;
      }
    }
    if (isResourceType(entryType)) {
      try {
        const query = url.includes('?') ? url.slice(url.indexOf('?') + 1) : '';
        checkSearchParameters(entryType, query, `${where}.request.url`);
        if (entry.request.ifNoneExist) {
          checkSearchParameters(entryType, entry.request.ifNoneExist, `${where}.request.ifNoneExist`);
        }
      } catch (err) {
        problems.set(i, err);
        return;
      }
    } else {
      problems.set(i, new HttpError(400, outcome('error', 'not-supported', `Unknown resource type "${entryType}" in request.url`, { expression: [`${where}.request.url`] })));
      return;
    }
    if (method === 'POST' || method === 'PUT') {
      if (!entry.resource) {
        problems.set(i, new HttpError(400, outcome('error', 'required', `${method} entry needs a resource`, { expression: [`${where}.resource`] })));
        return;
      }
      if (method === 'POST') {
        delete entry.resource.id; // server-assigned, as for a plain create
      }
      // medplum leaves a urn:uuid reference that matches no entry as it is, so the stored resource
      // would point nowhere; a real server refuses the bundle.
      const dangling = placeholderReferences(entry.resource).filter((ref) => !placeholders.has(ref));
      if (dangling.length) {
        problems.set(i, new HttpError(400, outcome('error', 'not-found', `Reference ${dangling[0]} matches no fullUrl in this Bundle`, { expression: [`${where}.resource`] })));
        return;
      }
      const problem = checkIncoming(entry.resource, `${where}.resource`);
      if (problem) {
        problems.set(i, problem);
      }
    }
  });

  if (isTransaction && problems.size) {
    // All-or-nothing: report every validation problem at once (that is what a developer wants to
    // see); if the only problems are rejections/forbidden, answer with the first one's status.
    const all = [...problems.values()];
    const validation = all.filter((p) => p.status === 400);
    if (validation.length) {
      throw new HttpError(400, { resourceType: 'OperationOutcome', issue: validation.flatMap((p) => p.outcome.issue) });
    }
    throw all[0];
  }

  // 2. Run the remaining entries through medplum, all-or-nothing for a transaction.
  const runIdx = entries.map((_, i) => i).filter((i) => !problems.has(i));
  const responseEntries = new Array(entries.length);
  for (const [i, p] of problems) {
    responseEntries[i] = { response: { status: String(p.status), outcome: p.outcome } };
  }
  let failure;
  if (runIdx.length) {
    failure = await exclusive(async () => {
      const snap = repo.snapshot();
      const kept = resolveIdentifierConditionals(runIdx, entries, responseEntries);
      const sub = { ...bundle, entry: kept.map((i) => entries[i]) };
      const [oo, result] = kept.length ? await router.handleRequest({ ...request, body: sub }, repo) : [allOk, { entry: [] }];
      if (!isOk(oo)) {
        repo.restore(snap);
        return new HttpError(getStatus(oo), oo);
      }
      result.entry.forEach((e, k) => {
        responseEntries[kept[k]] = e;
      });
      // A repeated conditional create answers with what its first occurrence became.
      for (const i of runIdx) {
        const loc = responseEntries[i]?.response?.location;
        if (loc?.startsWith('urn:')) {
          const first = responseEntries[runIdx.find((j) => entries[j].fullUrl === loc)];
          responseEntries[i] = { ...first, response: { ...first?.response, status: '200' } };
        }
      }
      if (isTransaction) {
        const bad = runIdx.find((i) => !/^2/.test(String(responseEntries[i]?.response?.status)));
        if (bad !== undefined) {
          repo.restore(snap);
          stats.rolled_back_transactions += 1;
          const r = responseEntries[bad].response;
          const oo2 = structuredClone(r.outcome ?? outcome('error', 'processing', 'entry failed'));
          for (const iss of oo2.issue ?? []) {
            iss.expression = iss.expression?.length ? iss.expression : [`Bundle.entry[${bad}]`];
            iss.diagnostics = `transaction rolled back: Bundle.entry[${bad}] (${entries[bad].request.method} ${entries[bad].request.url}) failed with ${r.status}`;
          }
          return new HttpError(Number(r.status) || 400, oo2);
        }
      }
      return undefined;
    });
  }
  if (failure) {
    log(`${bundle.type} failed: ${failure.status} ${failure.message}`);
    throw failure;
  }

  for (const e of responseEntries) {
    if (e?.response?.status === '201' && e.response.location) {
      count(stats.created, e.response.location.split('/')[0]);
    }
    if (e?.resource?.meta?.versionId && e.response) {
      e.response.etag = `W/"${e.resource.meta.versionId}"`;
      e.response.lastModified = e.resource.meta.lastUpdated;
    }
  }
  return send(res, 200, { resourceType: 'Bundle', type: `${bundle.type}-response`, entry: responseEntries });
}

/**
 * Answers the entries whose `ifNoneExist` is a single `identifier=system|value` from an index of the
 * stored resources, and turns the ones that match nothing into plain creates. medplum's in-memory
 * search scans every stored resource for each conditional create, which made a run of a few thousand
 * events quadratic (seconds per transaction). Requests are serialized (`exclusive`), so nothing can
 * be created between this lookup and the write. Returns the entry indices still to run through
 * medplum; references to an answered entry's fullUrl are rewritten to the existing resource.
 */
function resolveIdentifierConditionals(runIdx, entries, responseEntries) {
  const index = new Map();
  for (const [type, byId] of repo.resources) {
    for (const [id, r] of byId) {
      for (const idf of r.identifier ?? []) {
        const key = `${type}|${idf.system ?? ''}|${idf.value}`;
        index.set(key, [...(index.get(key) ?? []), id]);
      }
    }
  }
  const resolved = new Map();
  const kept = [];
  const firstNew = new Map(); // key -> fullUrl of the first entry in this bundle that creates it
  for (const i of runIdx) {
    const entry = entries[i];
    const m = entry.request.method === 'POST' ? /^identifier=([^|&]*)\|([^&]*)$/.exec(entry.request.ifNoneExist ?? '') : null;
    if (!m) {
      kept.push(i);
      continue;
    }
    const type = entry.request.url.split(/[/?]/)[0];
    const key = `${type}|${decodeURIComponent(m[1])}|${decodeURIComponent(m[2])}`;
    const ids = index.get(key) ?? [];
    if (ids.length === 0 && firstNew.has(key) && entry.fullUrl) {
      // The same conditional create twice in one bundle: the second is the first.
      resolved.set(entry.fullUrl, firstNew.get(key));
      responseEntries[i] = { response: { status: '200', location: firstNew.get(key) } };
      continue;
    }
    if (ids.length === 1) {
      const existing = repo.resources.get(type).get(ids[0]);
      responseEntries[i] = { resource: structuredClone(existing), response: { status: '200', location: `${type}/${ids[0]}` } };
      if (entry.fullUrl) {
        resolved.set(entry.fullUrl, `${type}/${ids[0]}`);
      }
      continue;
    }
    if (ids.length === 0) {
      delete entry.request.ifNoneExist;
      if (entry.fullUrl) {
        firstNew.set(key, entry.fullUrl);
      }
    }
    kept.push(i);
  }
  const rewrite = (value) => {
    if (Array.isArray(value)) {
      value.forEach(rewrite);
    } else if (value && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) {
        if (k === 'reference' && resolved.has(v)) {
          value[k] = resolved.get(v);
        } else {
          rewrite(v);
        }
      }
    }
  };
  if (resolved.size) {
    kept.forEach((i) => rewrite(entries[i].resource));
  }
  return kept;
}

/** Every Reference.reference in a resource that is a urn:uuid / urn:oid placeholder. */
function placeholderReferences(value, out = []) {
  if (Array.isArray(value)) {
    value.forEach((v) => placeholderReferences(v, out));
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'reference' && typeof v === 'string' && /^urn:(uuid|oid):/.test(v)) {
        out.push(v);
      } else {
        placeholderReferences(v, out);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Discovery documents

function capabilityStatement() {
  const resourceTypes = Object.values(getAllDataTypes())
    .filter((t) => isResourceTypeSchema(t) && isResourceType(t.name))
    .map((t) => t.name)
    .sort();
  const security = args.smart
    ? {
        service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
        extension: [
          {
            url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
            extension: [{ url: 'token', valueUri: `${baseUrl}/auth/token` }],
          },
        ],
      }
    : undefined;
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2025-01-01',
    kind: 'instance',
    software: { name: 'Vigil FHIR test peer (@medplum/fhir-router 4.5.2)' },
    implementation: { description: 'In-memory FHIR R4 test server', url: `${baseUrl}${FHIR_BASE}` },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json'],
    rest: [
      {
        mode: 'server',
        ...(security ? { security } : {}),
        interaction: [{ code: 'transaction' }, { code: 'batch' }],
        resource: resourceTypes.map((type) => ({
          type,
          interaction: ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'].map((code) => ({ code })),
          versioning: 'versioned',
          conditionalCreate: true,
          conditionalUpdate: true,
          updateCreate: true,
          searchParam: [{ name: 'identifier', type: 'token' }],
        })),
      },
    ],
  };
}

function smartConfiguration() {
  return {
    token_endpoint: `${baseUrl}/auth/token`,
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
    grant_types_supported: ['client_credentials'],
    scopes_supported: ['system/*.read', 'system/*.write', 'system/*.*', 'system/*.cruds'],
    capabilities: ['client-confidential-asymmetric', 'permission-v1', 'permission-v2'],
  };
}

// ---------------------------------------------------------------------------------------------
// Start / stop

server.listen(port, '127.0.0.1', () => {
  baseUrl = `http://127.0.0.1:${server.address().port}`;
  log(`FHIR base ${baseUrl}${FHIR_BASE}; SMART auth ${args.smart ? `on (token URL ${baseUrl}/auth/token, ttl ${tokenTtl}s)` : 'off'}`);
  process.stdout.write(`fhir-server listening on ${baseUrl}\n`);
});

server.on('error', (err) => fail(`cannot listen: ${err.message}`));

function shutdown(signal) {
  log(`${signal}: shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
