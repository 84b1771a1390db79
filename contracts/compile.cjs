// Standard-JSON driver for the pinned solc-js: reads the input on stdin, writes the output on
// stdout. Imports resolve relative to contracts/ (OpenZeppelin via the remapping in the input).
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

if (process.argv[2] === "--version") {
  process.stdout.write(solc.version());
  process.exit(0);
}
const root = __dirname;
function findImports(p) {
  const full = path.resolve(root, p);
  if (!full.startsWith(root + path.sep)) return { error: `import outside contracts/: ${p}` };
  try {
    return { contents: fs.readFileSync(full, "utf8") };
  } catch (e) {
    return { error: `not found: ${p}` };
  }
}
const input = fs.readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImports }));
