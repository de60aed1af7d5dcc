// Self-test of the FHIR test peer: `node --test selftest.mjs` (or `npm test`).
// Starts real server processes on ephemeral ports and talks HTTP to them, as Vigil's tests will.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

const HERE = new URL('.', import.meta.url).pathname;
const P = 'http://hl7.org/fhir/StructureDefinition/';
const HASH_SYSTEM = 'urn:vigil:observation-hash';
const FHIR = 'application/fhir+json';

// ---------------------------------------------------------------------------------------------
// Helpers

async function startServer(extraArgs = []) {
  const proc = spawn(process.execPath, [join(HERE, 'server.mjs'), '--port', '0', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => {
    stderr += d;
  });
  const origin = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start in 20 s:\n${stderr}`)), 20_000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /^fhir-server listening on (http:\/\/127\.0\.0\.1:\d+)\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${stderr}`)));
  });
  return {
    origin,
    base: `${origin}/fhir/R4`,
    stderr: () => stderr,
    stop: () =>
      new Promise((resolve) => {
        proc.once('exit', (code, signal) => resolve({ code, signal }));
        proc.kill('SIGTERM');
      }),
  };
}

async function call(url, { method = 'GET', body, headers = {} } = {}) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'Content-Type': FHIR, ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

const issuesText = (oo) => JSON.stringify(oo?.issue ?? oo);

const vitalCategory = [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }];

function spo2({ hash = randomUUID(), loinc = ['59408-5', '2708-6'], subject = 'Patient/123' } = {}) {
  return {
    resourceType: 'Observation',
    meta: { profile: [`${P}oxygensat`] },
    identifier: [{ system: HASH_SYSTEM, value: hash }],
    status: 'final',
    category: vitalCategory,
    code: {
      coding: [
        ...loinc.map((code) => ({ system: 'http://loinc.org', code })),
        { system: 'urn:iso:std:iso:11073:10101', code: '150456', display: 'MDC_PULS_OXIM_SAT_O2' },
      ],
    },
    subject: { reference: subject },
    effectiveDateTime: '2024-05-01T10:00:00Z',
    valueQuantity: { value: 97, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
  };
}

function bloodPressure({ hash = randomUUID(), diastolicUnit = 'mm[Hg]' } = {}) {
  const q = (value, code) => ({ value, unit: code, system: 'http://unitsofmeasure.org', code });
  return {
    resourceType: 'Observation',
    meta: { profile: [`${P}bp`] },
    identifier: [{ system: HASH_SYSTEM, value: hash }],
    status: 'final',
    category: vitalCategory,
    code: { coding: [{ system: 'http://loinc.org', code: '85354-9' }, { system: 'urn:iso:std:iso:11073:10101', code: '150020' }] },
    subject: { reference: 'Patient/123' },
    effectiveDateTime: '2024-05-01T10:00:00Z',
    component: [
      { code: { coding: [{ system: 'http://loinc.org', code: '8480-6' }, { system: 'urn:iso:std:iso:11073:10101', code: '150021' }] }, valueQuantity: q(120, 'mm[Hg]') },
      { code: { coding: [{ system: 'http://loinc.org', code: '8462-4' }, { system: 'urn:iso:std:iso:11073:10101', code: '150022' }] }, valueQuantity: q(80, diastolicUnit) },
    ],
  };
}

const createWithHash = (resource) => ({
  fullUrl: `urn:uuid:${randomUUID()}`,
  resource,
  request: { method: 'POST', url: resource.resourceType, ifNoneExist: `identifier=${HASH_SYSTEM}|${resource.identifier[0].value}` },
});

async function searchByHash(base, hash, type = 'Observation') {
  const r = await call(`${base}/${type}?identifier=${encodeURIComponent(`${HASH_SYSTEM}|${hash}`)}`);
  assert.equal(r.status, 200);
  assert.equal(r.body.type, 'searchset');
  return r.body;
}

// ---------------------------------------------------------------------------------------------
// FHIR behaviour (auth off)

describe('FHIR server without auth', () => {
  let srv;
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    const { code } = await srv.stop();
    assert.equal(code, 0, 'server exits cleanly on SIGTERM');
  });

  it('serves a CapabilityStatement', async () => {
    const r = await call(`${srv.base}/metadata`);
    assert.equal(r.status, 200);
    assert.equal(r.body.resourceType, 'CapabilityStatement');
    assert.equal(r.body.fhirVersion, '4.0.1');
    assert.match(r.headers.get('content-type'), /application\/fhir\+json/);
  });

  it('creates a valid SpO2 vital-signs Observation and finds it by identifier', async () => {
    const obs = spo2();
    const r = await call(`${srv.base}/Observation`, { method: 'POST', body: obs });
    assert.equal(r.status, 201, issuesText(r.body));
    assert.ok(r.body.id);
    assert.match(r.headers.get('location'), new RegExp(`/fhir/R4/Observation/${r.body.id}/_history/`));
    const found = await searchByHash(srv.base, obs.identifier[0].value);
    assert.equal(found.total, 1);
    assert.equal(found.entry[0].resource.id, r.body.id);
    const read = await call(`${srv.base}/Observation/${r.body.id}`);
    assert.equal(read.status, 200);
    assert.deepEqual(read.body.code, obs.code);
  });

  it('rejects SpO2 coded only with LOINC 59408-5 (oxygensat requires 2708-6)', async () => {
    const obs = spo2({ loinc: ['59408-5'] });
    const r = await call(`${srv.base}/Observation`, { method: 'POST', body: obs });
    assert.equal(r.status, 400);
    assert.equal(r.body.resourceType, 'OperationOutcome');
    assert.match(issuesText(r.body), /OxygenSatCode/);
    assert.match(issuesText(r.body), /2708-6/);
    assert.equal((await searchByHash(srv.base, obs.identifier[0].value)).total, 0, 'nothing stored');
  });

  it('rejects a wrong unit on SpO2 (profile fixes valueQuantity.code to %)', async () => {
    const obs = spo2();
    obs.valueQuantity.code = 'percent';
    const r = await call(`${srv.base}/Observation`, { method: 'POST', body: obs });
    assert.equal(r.status, 400);
    assert.match(issuesText(r.body), /percent/);
  });

  it('accepts a vital sign over a period (a charting summary) but not one dated only to the month', async () => {
    const obs = spo2();
    delete obs.effectiveDateTime;
    obs.effectivePeriod = { start: '2026-11-24T10:00:00Z', end: '2026-11-24T10:15:00Z' };
    const r = await call(`${srv.base}/Observation`, { method: 'POST', body: obs });
    assert.equal(r.status, 201, issuesText(r.body));
    const vague = spo2();
    delete vague.effectivePeriod;
    vague.effectiveDateTime = '2026-11';
    const refused = await call(`${srv.base}/Observation`, { method: 'POST', body: vague });
    assert.equal(refused.status, 400);
    assert.match(issuesText(refused.body), /vs-1/);
  });

  it('rejects a resource without status', async () => {
    const obs = spo2();
    delete obs.status;
    const r = await call(`${srv.base}/Observation`, { method: 'POST', body: obs });
    assert.equal(r.status, 400);
    assert.match(issuesText(r.body), /Observation\.status/);
    assert.match(issuesText(r.body), /Missing required property/);
  });

  it('rejects a status outside the required value set', async () => {
    const obs = spo2();
    obs.status = 'done';
    const r = await call(`${srv.base}/Observation`, { method: 'POST', body: obs });
    assert.equal(r.status, 400);
    assert.match(issuesText(r.body), /observation-status/);
  });

  it('rejects an unknown resourceType', async () => {
    const r1 = await call(`${srv.base}/Vital`, { method: 'POST', body: { resourceType: 'Vital', status: 'final' } });
    assert.equal(r1.status, 400);
    assert.equal(r1.body.resourceType, 'OperationOutcome');
    const r2 = await call(`${srv.base}/Observation`, { method: 'POST', body: { resourceType: 'Vital', status: 'final' } });
    assert.equal(r2.status, 400);
  });

  it('rejects non-JSON content types and malformed JSON', async () => {
    const r1 = await call(`${srv.base}/Observation`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'text/plain' } });
    assert.equal(r1.status, 415);
    const r2 = await call(`${srv.base}/Observation`, { method: 'POST', body: '{"resourceType":' });
    assert.equal(r2.status, 400);
  });

  it('If-None-Exist twice creates one resource', async () => {
    const obs = spo2();
    const headers = { 'If-None-Exist': `identifier=${HASH_SYSTEM}|${obs.identifier[0].value}` };
    const r1 = await call(`${srv.base}/Observation`, { method: 'POST', body: obs, headers });
    const r2 = await call(`${srv.base}/Observation`, { method: 'POST', body: obs, headers });
    assert.equal(r1.status, 201);
    assert.equal(r2.status, 200);
    assert.equal(r2.body.id, r1.body.id);
    assert.equal((await searchByHash(srv.base, obs.identifier[0].value)).total, 1);
  });

  it('If-None-Exist matching several resources answers 412', async () => {
    const obs = spo2();
    await call(`${srv.base}/Observation`, { method: 'POST', body: obs });
    await call(`${srv.base}/Observation`, { method: 'POST', body: obs });
    const r = await call(`${srv.base}/Observation`, {
      method: 'POST',
      body: obs,
      headers: { 'If-None-Exist': `identifier=${HASH_SYSTEM}|${obs.identifier[0].value}` },
    });
    assert.equal(r.status, 412);
    assert.equal((await searchByHash(srv.base, obs.identifier[0].value)).total, 2);
  });

  it('refuses an If-None-Exist with an unknown search parameter instead of creating duplicates', async () => {
    const r = await call(`${srv.base}/Observation`, { method: 'POST', body: spo2(), headers: { 'If-None-Exist': 'identifer=x|y' } });
    assert.equal(r.status, 400);
    assert.match(issuesText(r.body), /identifer/);
  });

  it('accepts a blood-pressure panel (85354-9 with 8480-6 and 8462-4 in mm[Hg], bp profile)', async () => {
    const r = await call(`${srv.base}/Observation`, { method: 'POST', body: bloodPressure() });
    assert.equal(r.status, 201, issuesText(r.body));
  });

  it('rejects a blood-pressure panel whose diastolic is in kPa', async () => {
    const r = await call(`${srv.base}/Observation`, { method: 'POST', body: bloodPressure({ diastolicUnit: 'kPa' }) });
    assert.equal(r.status, 400);
    assert.match(issuesText(r.body), /kPa/);
  });

  it('PUT creates (201) then updates (200)', async () => {
    const patient = { resourceType: 'Patient', id: `p-${Date.now()}`, identifier: [{ system: 'urn:mrn', value: '42' }], gender: 'female' };
    const r1 = await call(`${srv.base}/Patient/${patient.id}`, { method: 'PUT', body: patient });
    assert.equal(r1.status, 201, issuesText(r1.body));
    const r2 = await call(`${srv.base}/Patient/${patient.id}`, { method: 'PUT', body: { ...patient, gender: 'male' } });
    assert.equal(r2.status, 200);
    assert.equal((await call(`${srv.base}/Patient/${patient.id}`)).body.gender, 'male');
    const bad = await call(`${srv.base}/Patient/${patient.id}`, { method: 'PUT', body: { ...patient, gender: 'f' } });
    assert.equal(bad.status, 400);
  });

  it('a transaction with one invalid entry writes nothing', async () => {
    const good = spo2();
    const bad = spo2({ loinc: ['59408-5'] });
    const r = await call(srv.base, {
      method: 'POST',
      body: { resourceType: 'Bundle', type: 'transaction', entry: [createWithHash(good), createWithHash(bad)] },
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.resourceType, 'OperationOutcome');
    assert.match(issuesText(r.body), /Bundle\.entry\[1\]/);
    assert.equal((await searchByHash(srv.base, good.identifier[0].value)).total, 0);
  });

  it('a transaction that fails while writing is rolled back', async () => {
    // Two Patients share an identifier, so the second entry's conditional create fails with 412
    // after the first entry was already written by the router.
    const mrn = randomUUID();
    const patient = { resourceType: 'Patient', identifier: [{ system: HASH_SYSTEM, value: mrn }] };
    await call(`${srv.base}/Patient`, { method: 'POST', body: patient });
    await call(`${srv.base}/Patient`, { method: 'POST', body: patient });
    const obs = spo2();
    const r = await call(srv.base, {
      method: 'POST',
      body: { resourceType: 'Bundle', type: 'transaction', entry: [createWithHash(obs), createWithHash(patient)] },
    });
    assert.equal(r.status, 412, issuesText(r.body));
    assert.match(issuesText(r.body), /rolled back/);
    assert.equal((await searchByHash(srv.base, obs.identifier[0].value)).total, 0);
    assert.ok((await call(`${srv.origin}/__control/stats`)).body.rolled_back_transactions >= 1);
  });

  it('a transaction groups Observations under a DiagnosticReport via urn:uuid and the references resolve', async () => {
    const a = createWithHash(spo2());
    const b = createWithHash(bloodPressure());
    const report = {
      resourceType: 'DiagnosticReport',
      identifier: [{ system: HASH_SYSTEM, value: randomUUID() }],
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'PHY' }] }],
      code: { coding: [{ system: 'http://loinc.org', code: '85353-1', display: 'Vital signs panel' }] },
      subject: { reference: 'Patient/123' },
      effectiveDateTime: '2024-05-01T10:00:00Z',
      result: [{ reference: a.fullUrl }, { reference: b.fullUrl }],
    };
    const r = await call(srv.base, {
      method: 'POST',
      body: { resourceType: 'Bundle', type: 'transaction', entry: [a, b, createWithHash(report)] },
    });
    assert.equal(r.status, 200, issuesText(r.body));
    assert.equal(r.body.type, 'transaction-response');
    assert.deepEqual(r.body.entry.map((e) => e.response.status), ['201', '201', '201']);
    const locations = r.body.entry.map((e) => e.response.location);
    assert.match(locations[2], /^DiagnosticReport\//);
    const dr = await call(`${srv.base}/${locations[2]}`);
    assert.equal(dr.status, 200);
    assert.deepEqual(dr.body.result.map((x) => x.reference), [locations[0], locations[1]]);
    for (const ref of dr.body.result) {
      const o = await call(`${srv.base}/${ref.reference}`);
      assert.equal(o.status, 200);
      assert.equal(o.body.resourceType, 'Observation');
    }
  });

  it('refuses a transaction whose urn:uuid reference matches no entry', async () => {
    const obs = spo2();
    obs.hasMember = [{ reference: 'urn:uuid:00000000-0000-4000-8000-000000000000' }];
    const r = await call(srv.base, { method: 'POST', body: { resourceType: 'Bundle', type: 'transaction', entry: [createWithHash(obs)] } });
    assert.equal(r.status, 400);
    assert.match(issuesText(r.body), /matches no fullUrl/);
  });

  it('a transaction of more than 8 conditional creates works and is idempotent', async () => {
    // medplum refuses this in its own transaction mode; a FHIR server should not.
    const entries = Array.from({ length: 10 }, () => createWithHash(spo2()));
    const bundle = { resourceType: 'Bundle', type: 'transaction', entry: entries };
    const r1 = await call(srv.base, { method: 'POST', body: bundle });
    assert.equal(r1.status, 200, issuesText(r1.body));
    assert.ok(r1.body.entry.every((e) => e.response.status === '201'));
    const r2 = await call(srv.base, { method: 'POST', body: bundle });
    assert.equal(r2.status, 200);
    assert.ok(r2.body.entry.every((e) => e.response.status === '200'), 'retry creates nothing new');
    assert.deepEqual(r2.body.entry.map((e) => e.response.location), r1.body.entry.map((e) => e.response.location));
  });

  it('a batch reports per-entry results and keeps the good entries', async () => {
    const good = spo2();
    const r = await call(srv.base, {
      method: 'POST',
      body: { resourceType: 'Bundle', type: 'batch', entry: [createWithHash(good), createWithHash(spo2({ loinc: ['59408-5'] }))] },
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.type, 'batch-response');
    assert.deepEqual(r.body.entry.map((e) => e.response.status), ['201', '400']);
    assert.equal((await searchByHash(srv.base, good.identifier[0].value)).total, 1);
  });

  it('the reject control refuses matching resources with the configured status until cleared', async () => {
    const ctl = `${srv.origin}/__control/reject`;
    const set = await call(ctl, { method: 'POST', body: { subjectReference: 'Patient/gone', status: 422, text: 'Patient merged into Patient/456' } });
    assert.equal(set.status, 200);
    await call(ctl, { method: 'POST', body: { identifierValue: 'poison-hash', status: 409, text: 'duplicate' } });

    const r1 = await call(`${srv.base}/Observation`, { method: 'POST', body: spo2({ subject: 'Patient/gone' }) });
    assert.equal(r1.status, 422);
    assert.equal(r1.body.issue[0].severity, 'error');
    assert.equal(r1.body.issue[0].code, 'processing');
    assert.equal(r1.body.issue[0].diagnostics, 'Patient merged into Patient/456');

    const r2 = await call(`${srv.base}/Observation`, { method: 'POST', body: spo2({ hash: 'poison-hash' }) });
    assert.equal(r2.status, 409);

    const good = spo2();
    const tx = await call(srv.base, {
      method: 'POST',
      body: { resourceType: 'Bundle', type: 'transaction', entry: [createWithHash(good), createWithHash(spo2({ subject: 'Patient/gone' }))] },
    });
    assert.equal(tx.status, 422);
    assert.equal((await searchByHash(srv.base, good.identifier[0].value)).total, 0);

    const ok = await call(`${srv.base}/Observation`, { method: 'POST', body: spo2() });
    assert.equal(ok.status, 201, 'other subjects are unaffected');

    assert.equal((await call(ctl, { method: 'DELETE' })).status, 200);
    const r3 = await call(`${srv.base}/Observation`, { method: 'POST', body: spo2({ subject: 'Patient/gone' }) });
    assert.equal(r3.status, 201);
  });

  it('reports stats and resets', async () => {
    const stats = (await call(`${srv.origin}/__control/stats`)).body;
    assert.ok(stats.requests['POST Observation'] > 0);
    assert.ok(stats.requests['POST transaction'] > 0);
    assert.ok(stats.requests['POST Observation (in transaction)'] > 0);
    assert.ok(stats.created.Observation > 0);
    assert.ok(stats.created.DiagnosticReport >= 1);
    assert.ok(stats.validation_failures > 0);
    assert.equal((await call(`${srv.origin}/__control/reset`, { method: 'POST' })).status, 200);
    const after = (await call(`${srv.origin}/__control/stats`)).body;
    assert.equal(after.requests_total, 0);
    const all = await call(`${srv.base}/Observation`);
    assert.equal(all.body.total, 0);
  });
});

// ---------------------------------------------------------------------------------------------
// SMART Backend Services

function b64json(x) {
  return Buffer.from(JSON.stringify(x)).toString('base64url');
}

function signJwt(payload, privateKey, { alg = 'RS384', kid = 'k1' } = {}) {
  const input = `${b64json({ alg, typ: 'JWT', kid })}.${b64json(payload)}`;
  const key = alg === 'ES384' ? { key: privateKey, dsaEncoding: 'ieee-p1363' } : privateKey;
  return `${input}.${sign('sha384', Buffer.from(input), key).toString('base64url')}`;
}

function claims(clientId, aud, overrides = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { iss: clientId, sub: clientId, aud, exp: now + 240, iat: now, jti: randomUUID(), ...overrides };
}

async function requestToken(origin, assertion, scope = 'system/Observation.write system/Observation.read system/DiagnosticReport.write') {
  const res = await fetch(`${origin}/auth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
      scope,
    }),
  });
  return { status: res.status, body: await res.json() };
}

describe('SMART Backend Services auth', () => {
  const clientId = 'vigil-test';
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  let dir;
  let srv;
  let aud;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fhir-smart-'));
    const pemFile = join(dir, 'client.pem');
    writeFileSync(pemFile, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
    srv = await startServer(['--smart', '--client-id', clientId, '--public-key-file', pemFile, '--token-ttl', '120']);
    aud = `${srv.origin}/auth/token`;
  });
  after(async () => {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses FHIR requests without a token (401 OperationOutcome)', async () => {
    const r = await call(`${srv.base}/Observation`, { method: 'POST', body: spo2() });
    assert.equal(r.status, 401);
    assert.equal(r.body.resourceType, 'OperationOutcome');
    assert.match(r.headers.get('www-authenticate'), /^Bearer/);
    const r2 = await call(`${srv.base}/Observation`, { headers: { Authorization: 'Bearer not-a-token' } });
    assert.equal(r2.status, 401);
  });

  it('issues a token for a correct RS384 assertion and the token opens the FHIR API', async () => {
    const assertion = signJwt(claims(clientId, aud), rsa.privateKey);
    const t = await requestToken(srv.origin, assertion);
    assert.equal(t.status, 200, JSON.stringify(t.body));
    assert.equal(t.body.token_type, 'bearer');
    assert.equal(t.body.expires_in, 120);
    assert.match(t.body.scope, /system\/Observation.write/);
    assert.ok(t.body.access_token.length >= 32);

    const headers = { Authorization: `Bearer ${t.body.access_token}` };
    const created = await call(`${srv.base}/Observation`, { method: 'POST', body: spo2(), headers });
    assert.equal(created.status, 201, issuesText(created.body));
    const forbidden = await call(`${srv.base}/Patient`, { method: 'POST', body: { resourceType: 'Patient' }, headers });
    assert.equal(forbidden.status, 403, 'scope does not cover Patient writes');
  });

  it('refuses a bad signature', async () => {
    const t = await requestToken(srv.origin, signJwt(claims(clientId, aud), otherRsa.privateKey));
    assert.equal(t.status, 401);
    assert.equal(t.body.error, 'invalid_client');
    assert.equal(t.body.check, 'signature');
  });

  it('refuses a wrong aud', async () => {
    const t = await requestToken(srv.origin, signJwt(claims(clientId, 'https://ehr.example.com/token'), rsa.privateKey));
    assert.equal(t.status, 401);
    assert.equal(t.body.check, 'aud');
    assert.match(t.body.error_description, /aud/);
  });

  it('refuses an expired assertion and one more than 5 minutes ahead', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await requestToken(srv.origin, signJwt(claims(clientId, aud, { exp: now - 10 }), rsa.privateKey));
    assert.equal(expired.status, 401);
    assert.equal(expired.body.check, 'exp');
    assert.match(expired.body.error_description, /expired/);
    const tooLong = await requestToken(srv.origin, signJwt(claims(clientId, aud, { exp: now + 600 }), rsa.privateKey));
    assert.equal(tooLong.body.check, 'exp');
  });

  it('refuses a reused jti', async () => {
    const c = claims(clientId, aud);
    const first = await requestToken(srv.origin, signJwt(c, rsa.privateKey));
    assert.equal(first.status, 200);
    const replay = await requestToken(srv.origin, signJwt({ ...c, exp: c.exp + 1 }, rsa.privateKey));
    assert.equal(replay.status, 401);
    assert.equal(replay.body.check, 'jti');
  });

  it('refuses alg none, iss != sub and unknown clients', async () => {
    const c = claims(clientId, aud);
    const none = `${b64json({ alg: 'none', typ: 'JWT' })}.${b64json(c)}.`;
    assert.equal((await requestToken(srv.origin, none)).body.check, 'alg');
    const subMismatch = await requestToken(srv.origin, signJwt(claims(clientId, aud, { sub: 'someone-else' }), rsa.privateKey));
    assert.equal(subMismatch.body.check, 'sub');
    const unknown = await requestToken(srv.origin, signJwt(claims('nobody', aud), rsa.privateKey));
    assert.equal(unknown.body.check, 'client');
  });

  it('accepts ES384 for a client registered through the control endpoint', async () => {
    const reg = await call(`${srv.origin}/__control/clients`, {
      method: 'POST',
      body: { client_id: 'vigil-ec', public_key_pem: ec.publicKey.export({ type: 'spki', format: 'pem' }) },
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    const t = await requestToken(srv.origin, signJwt(claims('vigil-ec', aud), ec.privateKey, { alg: 'ES384' }));
    assert.equal(t.status, 200, JSON.stringify(t.body));
    const wrongAlg = await requestToken(srv.origin, signJwt(claims('vigil-ec', aud), rsa.privateKey));
    assert.equal(wrongAlg.body.check, 'alg');
  });

  it('reports issued tokens and verified jtis in stats', async () => {
    const stats = (await call(`${srv.origin}/__control/stats`)).body;
    assert.ok(stats.tokens_issued >= 3);
    assert.equal(stats.assertion_jtis.length, stats.tokens_issued);
    assert.ok(stats.auth_failures >= 2);
  });
});

describe('SMART token expiry', () => {
  it('refuses a token after --token-ttl seconds', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const srv = await startServer(['--smart', '--token-ttl', '1']);
    try {
      const aud = `${srv.origin}/auth/token`;
      await call(`${srv.origin}/__control/clients`, {
        method: 'POST',
        body: { client_id: 'c1', public_key_pem: rsa.publicKey.export({ type: 'spki', format: 'pem' }) },
      });
      const t = await requestToken(srv.origin, signJwt(claims('c1', aud), rsa.privateKey), 'system/*.read');
      assert.equal(t.status, 200, JSON.stringify(t.body));
      assert.equal(t.body.expires_in, 1);
      const headers = { Authorization: `Bearer ${t.body.access_token}` };
      assert.equal((await call(`${srv.base}/Observation`, { headers })).status, 200);
      await new Promise((r) => setTimeout(r, 1200));
      const late = await call(`${srv.base}/Observation`, { headers });
      assert.equal(late.status, 401);
      assert.match(issuesText(late.body), /expired/);
    } finally {
      await srv.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// CLI validator

describe('validate.mjs', () => {
  it('prints OK/INVALID per file and exits non-zero on any invalid one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fhir-validate-'));
    try {
      const ok = join(dir, 'ok.json');
      const bad = join(dir, 'bad.json');
      writeFileSync(ok, JSON.stringify(spo2()));
      writeFileSync(bad, JSON.stringify(spo2({ loinc: ['59408-5'] })));
      const good = spawnSync(process.execPath, [join(HERE, 'validate.mjs'), ok], { encoding: 'utf8' });
      assert.equal(good.status, 0, good.stderr);
      assert.equal(good.stdout, `OK ${ok}\n`);
      const mixed = spawnSync(process.execPath, [join(HERE, 'validate.mjs'), ok, bad], { encoding: 'utf8' });
      assert.equal(mixed.status, 1);
      const lines = mixed.stdout.trim().split('\n');
      assert.equal(lines[0], `OK ${ok}`);
      assert.match(lines[1], new RegExp(`^INVALID ${bad}: .*OxygenSatCode`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
