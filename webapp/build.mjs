// Build the page's one script: node build.mjs [OUTFILE]  (default: static/veil.js)
//
// esbuild bundles src/main.js with the pinned libraries (package-lock.json) into one
// self-contained script: no CDN, no import at run time. The build is deterministic: the same
// sources and lockfile give the same bytes (tests/test_webapp_build.py builds twice and
// compares with the committed static/veil.js and the SHA-256 published in README.md).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outfile = resolve(process.argv[2] ?? resolve(here, "static/veil.js"));

await build({
  absWorkingDir: here,
  entryPoints: ["src/main.js"],
  bundle: true,
  format: "iife",
  platform: "browser",
  target: ["es2020"],
  charset: "utf8",
  legalComments: "inline",
  minify: false,
  sourcemap: false,
  logLevel: "warning",
  banner: {
    js: "// Veil Mini App: built from webapp/src with esbuild; see docs/miniapp.md. Do not edit.",
  },
  outfile,
});

const digest = createHash("sha256").update(readFileSync(outfile)).digest("hex");
console.log(`${digest}  ${outfile}`);
