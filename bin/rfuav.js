#!/usr/bin/env node
// Entry point installed as `rfuav`; the compiled CLI lives in dist/ (built by `npm ci` via prepare).
import { run } from '../dist/cli/main.js';

await run(process.argv.slice(2));
