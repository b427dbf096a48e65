// Regenerates counts.json: the true token counts of every sample here under cl100k_base and
// o200k_base, from the npm package gpt-tokenizer. Not part of the build; run by hand, with the
// package installed outside the repository:
//   mkdir -p /tmp/tok && cd /tmp/tok && npm init -y && npm i gpt-tokenizer
//   NODE_PATH=/tmp/tok/node_modules node count_tokens.mjs > counts.json   (from this folder)
import { createRequire } from 'node:module';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(join(process.env.NODE_PATH ?? '/tmp/tok/node_modules', 'x.js'));
const cl100k = require('gpt-tokenizer/encoding/cl100k_base');
const o200k = require('gpt-tokenizer/encoding/o200k_base');
const version = require('gpt-tokenizer/package.json').version;

const dir = new URL('.', import.meta.url).pathname;
const samples = {};
for (const name of readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
  const text = readFileSync(join(dir, name), 'utf8');
  samples[name] = { bytes: Buffer.byteLength(text), cl100k_base: cl100k.encode(text).length, o200k_base: o200k.encode(text).length };
}
console.log(JSON.stringify({ tokenizer: `gpt-tokenizer ${version}`, samples }, null, 2));
