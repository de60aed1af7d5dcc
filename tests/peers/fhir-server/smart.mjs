// SMART Backend Services (client_credentials + private_key_jwt) for the test FHIR server.
//
// Verification uses only node:crypto so the checks are visible here rather than hidden in a library,
// and each refusal names the check that failed (`check` in the error body), so a test can assert on
// "signature", "aud", "exp", "jti"... instead of parsing prose.
//
// Spec: https://hl7.org/fhir/smart-app-launch/backend-services.html and RFC 7523 / RFC 6749 §5.2.
import { createPublicKey, randomBytes, verify } from 'node:crypto';

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const MAX_ASSERTION_LIFETIME_S = 300;
// Rounding of exp to whole seconds by the client can land it one second past now+300.
const CLOCK_ROUNDING_S = 1;

/** OAuth error: RFC 6749 says invalid_client may be 401; everything else about the request is 400. */
class OAuthError extends Error {
  constructor(error, check, description) {
    super(description);
    this.error = error;
    this.check = check;
    this.status = error === 'invalid_client' ? 401 : 400;
  }
}

export class SmartAuth {
  /**
   * @param {{ tokenTtl: number, log?: (msg: string) => void }} options
   */
  constructor({ tokenTtl, log }) {
    this.tokenTtl = tokenTtl;
    this.log = log ?? (() => {});
    this.clients = new Map(); // client_id -> { key: KeyObject, allowed: ParsedScope[] }
    this.tokens = new Map(); // access_token -> { clientId, scopes: ParsedScope[], exp (ms) }
    this.seenJtis = new Map(); // client_id -> Set(jti)
    this.stats = { tokens_issued: 0, assertion_jtis: [], token_errors: {} };
  }

  /**
   * Registers a client's public key (PEM text or a public JWK object).
   * @param {string} clientId
   * @param {{ pem?: string, jwk?: object, scope?: string }} registration
   */
  registerClient(clientId, { pem, jwk, scope }) {
    if (!clientId || typeof clientId !== 'string') {
      throw new Error('client_id is required');
    }
    let key;
    if (pem) {
      key = createPublicKey(pem);
    } else if (jwk) {
      key = createPublicKey({ key: jwk, format: 'jwk' });
    } else {
      throw new Error('public_key_pem or jwk is required');
    }
    if (key.type !== 'public') {
      throw new Error('a public key is required');
    }
    const keyAlg = algForKey(key);
    if (!keyAlg) {
      throw new Error('key must be RSA (for RS384) or EC P-384 (for ES384)');
    }
    const allowed = parseScopes(scope ?? 'system/*.*');
    if (!allowed) {
      throw new Error(`unsupported scope ${JSON.stringify(scope)}`);
    }
    this.clients.set(clientId, { key, keyAlg, allowed });
    this.seenJtis.set(clientId, this.seenJtis.get(clientId) ?? new Set());
    this.log(`registered SMART client ${clientId} (${keyAlg} key, scope ${scope ?? 'system/*.*'})`);
    return { client_id: clientId, alg: keyAlg, scope: scope ?? 'system/*.*' };
  }

  /**
   * Handles POST /auth/token.
   * @param {URLSearchParams} form
   * @param {string[]} tokenUrls URLs accepted as `aud`
   * @returns {{ status: number, body: object }}
   */
  token(form, tokenUrls) {
    try {
      return { status: 200, body: this.issue(form, tokenUrls) };
    } catch (err) {
      if (!(err instanceof OAuthError)) {
        throw err;
      }
      this.stats.token_errors[err.check] = (this.stats.token_errors[err.check] ?? 0) + 1;
      this.log(`token refused: ${err.error} [${err.check}] ${err.message}`);
      return {
        status: err.status,
        body: { error: err.error, error_description: err.message, check: err.check },
      };
    }
  }

  issue(form, tokenUrls) {
    const grantType = form.get('grant_type');
    if (grantType !== 'client_credentials') {
      throw new OAuthError('unsupported_grant_type', 'grant_type', `grant_type must be client_credentials, got ${JSON.stringify(grantType)}`);
    }
    if (form.get('client_assertion_type') !== ASSERTION_TYPE) {
      throw new OAuthError('invalid_request', 'client_assertion_type', `client_assertion_type must be ${ASSERTION_TYPE}`);
    }
    const assertion = form.get('client_assertion');
    if (!assertion) {
      throw new OAuthError('invalid_request', 'client_assertion', 'client_assertion is missing');
    }
    const requestedScope = form.get('scope');
    if (!requestedScope) {
      throw new OAuthError('invalid_request', 'scope', 'scope is required (e.g. system/Observation.write)');
    }

    const { header, payload, signingInput, signature } = decodeJws(assertion);
    if (header.alg !== 'RS384' && header.alg !== 'ES384') {
      throw new OAuthError('invalid_client', 'alg', `JWT alg must be RS384 or ES384, got ${JSON.stringify(header.alg)}`);
    }
    const clientId = payload.iss;
    const client = typeof clientId === 'string' ? this.clients.get(clientId) : undefined;
    if (!client) {
      throw new OAuthError('invalid_client', 'client', `unknown client (iss ${JSON.stringify(clientId)} is not registered)`);
    }
    const formClientId = form.get('client_id');
    if (formClientId && formClientId !== clientId) {
      throw new OAuthError('invalid_client', 'client', `client_id ${formClientId} does not match iss ${clientId}`);
    }
    if (header.alg !== client.keyAlg) {
      throw new OAuthError('invalid_client', 'alg', `JWT alg ${header.alg} does not match the registered ${client.keyAlg} key`);
    }
    const ok = verify(
      'sha384',
      Buffer.from(signingInput),
      // JWS ES384 signatures are raw r||s (IEEE P1363), not DER.
      header.alg === 'ES384' ? { key: client.key, dsaEncoding: 'ieee-p1363' } : client.key,
      signature
    );
    if (!ok) {
      throw new OAuthError('invalid_client', 'signature', 'client_assertion signature does not verify with the registered public key');
    }
    if (payload.sub !== clientId) {
      throw new OAuthError('invalid_client', 'sub', `sub (${JSON.stringify(payload.sub)}) must equal iss (${clientId})`);
    }
    const auds = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!auds.some((a) => tokenUrls.includes(a))) {
      throw new OAuthError('invalid_client', 'aud', `aud ${JSON.stringify(payload.aud)} must be the token URL ${tokenUrls[0]}`);
    }
    const now = Math.floor(Date.now() / 1000);
    if (typeof payload.exp !== 'number') {
      throw new OAuthError('invalid_client', 'exp', 'exp claim is missing or not a number');
    }
    if (payload.exp <= now) {
      throw new OAuthError('invalid_client', 'exp', `assertion expired (exp ${payload.exp} <= now ${now})`);
    }
    if (payload.exp > now + MAX_ASSERTION_LIFETIME_S + CLOCK_ROUNDING_S) {
      throw new OAuthError('invalid_client', 'exp', `exp ${payload.exp} is more than ${MAX_ASSERTION_LIFETIME_S} s in the future (now ${now})`);
    }
    if (typeof payload.nbf === 'number' && payload.nbf > now + CLOCK_ROUNDING_S) {
      throw new OAuthError('invalid_client', 'nbf', `assertion not valid before ${payload.nbf} (now ${now})`);
    }
    if (typeof payload.jti !== 'string' || !payload.jti) {
      throw new OAuthError('invalid_client', 'jti', 'jti claim is missing');
    }
    const seen = this.seenJtis.get(clientId);
    if (seen.has(payload.jti)) {
      throw new OAuthError('invalid_client', 'jti', `jti ${JSON.stringify(payload.jti)} was already used (replay)`);
    }

    const requested = parseScopes(requestedScope);
    if (!requested) {
      throw new OAuthError('invalid_scope', 'scope', `unsupported scope ${JSON.stringify(requestedScope)}: expected system/<Type|*>.<read|write|*|cruds>`);
    }
    const refused = requested.filter((s) => !client.allowed.some((a) => covers(a, s)));
    if (refused.length) {
      throw new OAuthError('invalid_scope', 'scope', `scope not allowed for this client: ${refused.map((s) => s.text).join(' ')}`);
    }

    // Only a fully verified assertion burns its jti: a rejected one may be fixed and resent.
    seen.add(payload.jti);
    this.stats.assertion_jtis.push(payload.jti);
    const accessToken = randomBytes(32).toString('base64url');
    this.tokens.set(accessToken, { clientId, scopes: requested, exp: Date.now() + this.tokenTtl * 1000 });
    this.stats.tokens_issued += 1;
    this.log(`issued token to ${clientId} (jti ${payload.jti}, scope ${requestedScope}, ${this.tokenTtl}s)`);
    return { access_token: accessToken, token_type: 'bearer', expires_in: this.tokenTtl, scope: requestedScope };
  }

  /**
   * Checks an Authorization header.
   * @returns {{ ok: true, token: object } | { ok: false, reason: string }}
   */
  authenticate(authorization) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) {
      return { ok: false, reason: 'missing bearer token (Authorization: Bearer <access_token>)' };
    }
    const token = this.tokens.get(m[1]);
    if (!token) {
      return { ok: false, reason: 'unknown access token' };
    }
    if (token.exp <= Date.now()) {
      return { ok: false, reason: 'access token expired' };
    }
    return { ok: true, token };
  }

  /**
   * Whether a token's scopes allow `action` (one of c r u d s) on `resourceType`.
   */
  static allows(token, resourceType, action) {
    return token.scopes.some((s) => (s.type === '*' || s.type === resourceType) && s.actions.has(action));
  }

  snapshotStats() {
    const now = Date.now();
    let active = 0;
    for (const t of this.tokens.values()) {
      if (t.exp > now) {
        active += 1;
      }
    }
    return { ...this.stats, assertion_jtis: [...this.stats.assertion_jtis], tokens_active: active, clients: [...this.clients.keys()] };
  }
}

function algForKey(key) {
  if (key.asymmetricKeyType === 'rsa') {
    return 'RS384';
  }
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'secp384r1') {
    return 'ES384';
  }
  return undefined;
}

function decodeJws(jws) {
  const parts = jws.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) {
    throw new OAuthError('invalid_client', 'format', 'client_assertion is not a compact JWS (header.payload.signature, base64url)');
  }
  let header;
  let payload;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    throw new OAuthError('invalid_client', 'format', 'client_assertion header or payload is not base64url JSON');
  }
  if (!header || typeof header !== 'object' || !payload || typeof payload !== 'object') {
    throw new OAuthError('invalid_client', 'format', 'client_assertion header and payload must be JSON objects');
  }
  return { header, payload, signingInput: `${parts[0]}.${parts[1]}`, signature: Buffer.from(parts[2], 'base64url') };
}

// SMART v1 (read/write/*) and v2 (cruds letters, optional ?query which we ignore) system scopes.
const V1_ACTIONS = { read: 'rs', write: 'cud', '*': 'cruds' };

/** @returns {{ text: string, type: string, actions: Set<string> }[] | null} null if any scope is unsupported. */
function parseScopes(text) {
  const out = [];
  for (const raw of text.split(/\s+/).filter(Boolean)) {
    const m = /^system\/([A-Za-z]+|\*)\.([a-z*]+)(\?.*)?$/.exec(raw);
    const letters = m && (V1_ACTIONS[m[2]] ?? (/^c?r?u?d?s?$/.test(m[2]) ? m[2] : undefined));
    if (!letters) {
      return null;
    }
    out.push({ text: raw, type: m[1], actions: new Set(letters) });
  }
  return out.length ? out : null;
}

function covers(allowed, wanted) {
  return (allowed.type === '*' || allowed.type === wanted.type) && [...wanted.actions].every((a) => allowed.actions.has(a));
}
