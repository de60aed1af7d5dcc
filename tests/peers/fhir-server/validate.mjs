#!/usr/bin/env node
// Independent FHIR R4 validator: the same checks the test server applies to every write.
//
//   node validate.mjs [--profile URL]... FILE...
//
// Each FILE holds one resource, a Bundle (each entry.resource is validated on its own, so that
// entry profiles are checked), a JSON array of resources, or NDJSON. Prints one line per file:
//   OK path [notes]            or            INVALID path: problem; problem...
// Exit status: 0 all valid, 1 any invalid, 2 usage error.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { formatIssue, initValidation, knownProfiles, validateFhirResource } from './validation.mjs';

const { values: opts, positionals: files } = parseArgs({
  options: {
    // Validate against these profiles too (for resources that do not declare them in meta.profile).
    profile: { type: 'string', multiple: true, default: [] },
    'list-profiles': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  allowPositionals: true,
});

if (opts.help || (!files.length && !opts['list-profiles'])) {
  process.stderr.write('usage: node validate.mjs [--profile URL]... FILE...\n       node validate.mjs --list-profiles\n');
  process.exit(opts.help ? 0 : 2);
}

initValidation({ searchParameters: false });

if (opts['list-profiles']) {
  process.stdout.write(`${knownProfiles().join('\n')}\n`);
  process.exit(0);
}

let invalid = 0;
for (const file of files) {
  const line = validateFile(file);
  if (!line.startsWith('OK ')) {
    invalid += 1;
  }
  process.stdout.write(`${line}\n`);
}
process.exit(invalid ? 1 : 0);

function validateFile(file) {
  let resources;
  try {
    resources = readResources(readFileSync(file, 'utf8'));
  } catch (err) {
    return `INVALID ${file}: ${err.message}`;
  }
  if (!resources.length) {
    return `INVALID ${file}: no resource in file`;
  }
  const problems = [];
  const notes = new Set();
  for (const { label, resource, skip } of resources) {
    const subject = skip ? resource : withExtraProfiles(resource);
    const result = validateFhirResource(subject);
    const prefix = label ? `${label}: ` : '';
    problems.push(...result.errors.filter((i) => !skip?.(i)).map((i) => prefix + formatIssue(i)));
    for (const p of result.profilesUnknown) {
      notes.add(`unknown profile ${p} not checked`);
    }
  }
  if (problems.length) {
    return `INVALID ${file}: ${problems.join('; ')}`;
  }
  return `OK ${file}${notes.size ? ` (${[...notes].join('; ')})` : ''}`;
}

function withExtraProfiles(resource) {
  if (!opts.profile.length || !resource || typeof resource !== 'object') {
    return resource;
  }
  const copy = structuredClone(resource);
  copy.meta = { ...copy.meta, profile: [...new Set([...(copy.meta?.profile ?? []), ...opts.profile])] };
  return copy;
}

/** @returns {{ label?: string, resource: unknown, skip?: (issue: object) => boolean }[]} */
function readResources(text) {
  let json;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const lines = text.split('\n').filter((l) => l.trim());
    if (lines.length > 1) {
      return lines.map((l, n) => {
        try {
          return { label: `line ${n + 1}`, resource: JSON.parse(l) };
        } catch {
          throw new Error(`line ${n + 1} is not JSON`);
        }
      });
    }
    throw new Error(`not JSON: ${err.message}`);
  }
  if (Array.isArray(json)) {
    return json.map((resource, n) => ({ label: `[${n}]`, resource }));
  }
  if (json?.resourceType === 'Bundle' && Array.isArray(json.entry) && json.entry.some((e) => e?.resource)) {
    // The Bundle shell (type, request...) plus each entry with its own profiles.
    // Issues inside entry resources are left to the per-entry pass, which reports them once and
    // with their profiles applied.
    const insideEntry = (i) => i.expression?.some((e) => /^Bundle\.entry\[\d+\]\.resource\b/.test(e));
    return [
      { label: 'Bundle', resource: json, skip: insideEntry },
      ...json.entry.map((e, n) => ({ label: `entry[${n}]`, resource: e?.resource })).filter((x) => x.resource),
    ];
  }
  return [{ resource: json }];
}
