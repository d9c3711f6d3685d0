#!/usr/bin/env node
// Validate glb files with the Khronos glTF-Validator (npm `gltf-validator`, a library without a CLI).
//
//   node scripts/js/validate_glb.mjs DIR_OR_FILE...
//
// Directories are searched recursively for *.glb; files named on the command line are validated whatever
// their extension. Prints ONE JSON object on stdout:
//   {"files": n, "errors": total, "warnings": total, "infos": total, "validatorVersion": "...",
//    "results": [{"file", "numErrors", "numWarnings", "numInfos", "truncated", "messages": [...]}]}
// where messages are the first few errors and warnings of the file ({code, message, pointer, severity}).
// Exit code 0 when no file has an error, 1 when one has, 2 on a usage error.
//
// Our glbs must be self-contained: a glb that refers to an external resource (a buffer or image by uri)
// gets an error instead of being loaded from disk.
import { createRequire } from 'node:module';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

const require = createRequire(import.meta.url);
const validator = require('gltf-validator');

const MAX_ISSUES = 200; // per file: enough to count what matters, bounded for a broken file
const MAX_MESSAGES = 10; // errors and warnings copied into the report per file
const SEVERITY = ['error', 'warning', 'info', 'hint'];

async function collect(arg, out) {
  let st;
  try {
    st = await stat(arg);
  } catch {
    out.push({ file: arg, missing: true });
    return;
  }
  if (st.isDirectory()) {
    const entries = await readdir(arg, { recursive: true, withFileTypes: true });
    const found = entries
      .filter((e) => e.isFile() && e.name.toLowerCase().endsWith('.glb'))
      .map((e) => path.join(e.parentPath ?? e.path, e.name))
      .sort();
    for (const f of found) out.push({ file: f });
  } else {
    out.push({ file: arg });
  }
}

async function validateOne(file) {
  const bytes = await readFile(file);
  const report = await validator.validateBytes(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), {
    uri: path.basename(file),
    format: 'glb',
    maxIssues: MAX_ISSUES,
    writeTimestamp: false,
    externalResourceFunction: (uri) =>
      Promise.reject(new Error(`external resource ${JSON.stringify(uri)}: our glbs must be self-contained`)),
  });
  const issues = report.issues;
  const messages = issues.messages
    .filter((m) => m.severity <= 1)
    .slice(0, MAX_MESSAGES)
    .map((m) => ({ code: m.code, message: m.message, pointer: m.pointer ?? null, severity: SEVERITY[m.severity] }));
  return {
    file,
    numErrors: issues.numErrors,
    numWarnings: issues.numWarnings,
    numInfos: issues.numInfos,
    truncated: Boolean(issues.truncated),
    messages,
  };
}

async function main(argv) {
  if (argv.length === 0 || argv.includes('-h') || argv.includes('--help')) {
    process.stderr.write('usage: node scripts/js/validate_glb.mjs DIR_OR_FILE...\n');
    return 2;
  }
  const targets = [];
  for (const arg of argv) await collect(arg, targets);
  const summary = { files: 0, errors: 0, warnings: 0, infos: 0, validatorVersion: validator.version(), results: [] };
  for (const t of targets) {
    let r;
    if (t.missing) {
      r = { file: t.file, numErrors: 1, numWarnings: 0, numInfos: 0, truncated: false,
            messages: [{ code: 'FILE_NOT_FOUND', message: 'no such file or directory', pointer: null, severity: 'error' }] };
    } else {
      try {
        r = await validateOne(t.file);
      } catch (err) {
        r = { file: t.file, numErrors: 1, numWarnings: 0, numInfos: 0, truncated: false,
              messages: [{ code: 'VALIDATOR_FAILED', message: String(err?.message ?? err), pointer: null, severity: 'error' }] };
      }
    }
    summary.files += 1;
    summary.errors += r.numErrors;
    summary.warnings += r.numWarnings;
    summary.infos += r.numInfos;
    summary.results.push(r);
  }
  process.stdout.write(JSON.stringify(summary) + '\n');
  return summary.errors > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { process.stderr.write(`validate_glb: ${err?.stack ?? err}\n`); process.exitCode = 2; },
);
