#!/usr/bin/env node
// Compiles dnft's sample contracts, and two stock OpenZeppelin ones that tests bring as
// "a studio's own collection", with solcjs, offline, into committed build artifacts.
//
//   node scripts/build_contracts.mjs [--out DIR]
//
// Writes DIR/contracts/build/<Name>.json (abi, bytecode, compiler, settings, source hashes)
// and DIR/abi/<Name>.json (the ABI alone); DIR defaults to schemas/. The output is
// byte-identical from run to run: tests rebuild into a temp dir and diff it against the
// committed files, so Python tests and the demo never need a compiler.

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import solc from "solc";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const NODE_MODULES = join(ROOT, "node_modules");
// One contract per file, named as the file.
const CONTRACTS = ["DynamicCollection", "PriceAggregator", "StockERC721", "StockERC1155"];
const SOURCE_DIR = join(ROOT, "schemas", "contracts");

// Only what changes the bytecode is recorded in each artifact as `settings`;
// outputSelection is added at compile time.
const SETTINGS = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 200 },
};

function fail(message) {
  console.error(`build_contracts: ${message}`);
  process.exit(1);
}

function sha256(text) {
  return createHash("sha256").update(text).digest("hex");
}

// Source unit names are repo-relative with forward slashes: they are embedded in the
// bytecode's metadata hash, so they must not depend on where the checkout lives.
function unitName(absPath) {
  return relative(ROOT, absPath).split(sep).join("/");
}

// Resolves "@openzeppelin/..." imports from node_modules only; nothing is fetched.
function findImports(importPath) {
  if (importPath.split("/").includes("..")) {
    return { error: `refusing import outside node_modules: ${importPath}` };
  }
  try {
    return { contents: readFileSync(join(NODE_MODULES, importPath), "utf8") };
  } catch (err) {
    return { error: `import not found in node_modules: ${importPath} (${err.code})` };
  }
}

// Deep copy with object keys sorted, so JSON.stringify is canonical.
function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys(value[k])]),
    );
  }
  return value;
}

function writeJson(path, value) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(sortKeys(value), null, 2)}\n`);
}

function main() {
  const { values } = parseArgs({ options: { out: { type: "string" } } });
  const outDir = resolve(values.out ?? join(ROOT, "schemas"));

  const sources = {};
  const hashes = {};
  for (const name of CONTRACTS) {
    const path = join(SOURCE_DIR, `${name}.sol`);
    const content = readFileSync(path, "utf8");
    const unit = unitName(path);
    sources[unit] = { content };
    hashes[name] = { [unit]: sha256(content) };
  }

  const input = {
    language: "Solidity",
    sources,
    settings: {
      ...SETTINGS,
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));

  const diagnostics = output.errors ?? [];
  for (const d of diagnostics) console.error(d.formattedMessage.trimEnd());
  const errors = diagnostics.filter((d) => d.severity === "error");
  if (errors.length > 0) fail(`${errors.length} compiler error(s)`);

  for (const name of CONTRACTS) {
    const unit = Object.keys(hashes[name])[0];
    const compiled = output.contracts?.[unit]?.[name];
    if (!compiled) fail(`no output for ${unit}:${name}`);
    const bytecode = compiled.evm.bytecode.object;
    if (!bytecode) fail(`${name} compiled to empty bytecode (abstract?)`);
    writeJson(join(outDir, "contracts", "build", `${name}.json`), {
      contractName: name,
      abi: compiled.abi,
      bytecode: `0x${bytecode}`,
      deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
      compiler: solc.version(),
      settings: SETTINGS,
      sourceSha256: hashes[name],
    });
    writeJson(join(outDir, "abi", `${name}.json`), compiled.abi);
    const size = compiled.evm.deployedBytecode.object.length / 2;
    console.log(`${name}: ${size} bytes deployed -> ${unitName(join(outDir, "contracts", "build"))}`);
  }
}

main();
