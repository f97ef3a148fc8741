// validate-asyncapi.mjs checks AsyncAPI documents (make check-asyncapi):
//
//  1. @asyncapi/parser's validate (the library behind `asyncapi validate`, without the CLI's
//     weight): every diagnostic is printed; one of severity error fails the file.
//  2. Every message example's payload against the message's payload schema, which the parser
//     does not check for AsyncAPI 3.
//  3. With --openapi FILE: every schema in components.schemas that shares its name with one in
//     the OpenAPI document's components.schemas equals it, `nullable: true` spelt as a "null"
//     type. The AsyncAPI document keeps copies of the REST shapes so that it stands alone; this
//     keeps the copies honest.
//
// Usage: node scripts/validate-asyncapi.mjs [--openapi openapi.yaml] FILE...
// Exit status: 0 clean (warnings and infos allowed), 1 on any error, 2 on bad usage or a file
// that cannot be read.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import yaml from 'js-yaml';

const args = process.argv.slice(2);
let openapiFile;
if (args[0] === '--openapi') {
  openapiFile = args[1];
  args.splice(0, 2);
}
if (args.length === 0 || (openapiFile !== undefined && !openapiFile)) {
  console.error('usage: node scripts/validate-asyncapi.mjs [--openapi openapi.yaml] FILE...');
  process.exit(2);
}

async function read(file) {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    console.error(`${file}: ${err.message}`);
    process.exit(2);
  }
}

const severityName = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

// parserErrors prints the parser's diagnostics of one document and counts its errors.
async function parserErrors(parser, file, text) {
  // source lets relative $refs resolve against the file's own folder.
  const diagnostics = await parser.validate(text, { source: path.resolve(file) });
  let errors = 0;
  for (const d of diagnostics) {
    const { line, character } = d.range.start;
    const at = d.path.length ? ` at ${d.path.join('.')}` : '';
    console.log(`${file}:${line + 1}:${character + 1}: ${severityName[d.severity] ?? d.severity} ${d.code}: ${d.message}${at}`);
    if (d.severity === DiagnosticSeverity.Error) errors++;
  }
  return errors;
}

// exampleErrors validates every example of components.messages against its payload schema,
// compiled in place so that local $refs ("#/components/schemas/...") resolve inside the document.
function exampleErrors(file, doc) {
  // Without allErrors each alternative of a failed oneOf reports only its first error, so the
  // report stays short and still names what is wrong in the alternative the example meant.
  const ajv = new Ajv({ strict: false, formats: { int64: true, double: true } });
  addFormats(ajv);
  ajv.addSchema(doc, 'doc');
  let errors = 0;
  let checked = 0;
  for (const [name, msg] of Object.entries(doc?.components?.messages ?? {})) {
    if (!msg?.payload || !Array.isArray(msg.examples)) continue;
    const pointer = `doc#/components/messages/${name.replaceAll('~', '~0').replaceAll('/', '~1')}/payload`;
    let validate;
    try {
      validate = ajv.getSchema(pointer);
    } catch (err) {
      // Most often a dangling $ref, which the parser has reported too.
      console.log(`${file}: error components.messages.${name}: the payload schema does not compile: ${err.message}`);
      errors++;
      continue;
    }
    msg.examples.forEach((ex, i) => {
      if (!('payload' in ex)) return;
      checked++;
      if (validate(ex.payload)) return;
      for (const e of validate.errors) {
        console.log(`${file}: error components.messages.${name}.examples[${i}]${ex.name ? ` (${ex.name})` : ''}: payload${e.instancePath} ${e.message}`);
      }
      errors++;
    });
  }
  console.log(`${file}: ${checked} message example(s) checked against their payload schemas`);
  return errors;
}

// asJSONSchema spells OpenAPI 3.0's `nullable: true` as JSON Schema's "null" type.
function asJSONSchema(v) {
  if (Array.isArray(v)) return v.map(asJSONSchema);
  if (v === null || typeof v !== 'object') return v;
  const out = {};
  for (const [k, e] of Object.entries(v)) {
    if (k !== 'nullable') out[k] = asJSONSchema(e);
  }
  if (v.nullable === true && typeof v.type === 'string') out.type = [v.type, 'null'];
  return out;
}

// copyErrors compares the schemas both documents name alike.
function copyErrors(file, doc, openapi) {
  const rest = openapi?.components?.schemas ?? {};
  let errors = 0;
  let compared = 0;
  for (const [name, schema] of Object.entries(doc?.components?.schemas ?? {})) {
    if (!(name in rest)) continue;
    compared++;
    if (!isDeepStrictEqual(schema, asJSONSchema(rest[name]))) {
      console.log(`${file}: error components.schemas.${name} differs from ${openapiFile}'s; copy it again`);
      errors++;
    }
  }
  console.log(`${file}: ${compared} schema(s) compared with ${openapiFile}`);
  return errors;
}

const openapi = openapiFile && yaml.load(await read(openapiFile));
const parser = new Parser();
let failed = false;
for (const file of args) {
  const text = await read(file);
  let errors = await parserErrors(parser, file, text);
  let doc;
  try {
    doc = yaml.load(text);
  } catch {
    doc = undefined; // not YAML: the parser has said so
  }
  if (doc && typeof doc === 'object') {
    errors += exampleErrors(file, doc);
    if (openapi) errors += copyErrors(file, doc, openapi);
  }
  console.log(`${file}: ${errors} error(s)`);
  failed ||= errors > 0;
}
process.exit(failed ? 1 : 0);
