/**
 * The layout rules of ARCHITECTURE.md, checked on the source: imports point
 * only down the layers, other folders are entered through their mod.ts (lazily
 * loaded OS adapters by path), no import cycle, and no module over 500 lines.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";
import { REPO_ROOT } from "../scripts/agent_process.ts";

/** Layers from the bottom; a module may import its own layer and those below. */
const RANK: Record<string, number> = {
  "lib/protocol": 0,
  "lib/config": 1,
  "lib/logging": 2,
  "lib/os": 3,
  "lib/transport": 4,
  "lib/core": 4,
  "commands": 5,
  "lib/agent": 6,
  "lib/cli": 7,
  "lib/configure": 7,
  "main.ts": 8,
};

const IMPORT_RE =
  /(?:^|[\s;])(?:import|export)\b[^"';]*?(?:from\s*)?["'](\.{1,2}\/[^"']+)["']|import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(join(REPO_ROOT, dir))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...sourceFiles(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

/** The layer folder of a repository path: "lib/core", "commands", "main.ts". */
function layerOf(path: string): string {
  if (path === "main.ts") return path;
  if (path.startsWith("commands/")) return "commands";
  const m = /^lib\/[^/]+/.exec(path);
  if (!m || !(m[0] in RANK)) throw new Error(`${path} is in no layer of ARCHITECTURE.md`);
  return m[0];
}

/** The folder whose mod.ts is the entry for `path` (commands: the family folder). */
function entryFolder(path: string): string {
  if (path === "commands/mod.ts") return "commands";
  return path.startsWith("commands/") ? path.split("/").slice(0, 2).join("/") : layerOf(path);
}

function importsOf(file: string): string[] {
  const text = Deno.readTextFileSync(join(REPO_ROOT, file));
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2];
    if (!spec.endsWith(".ts")) continue; // embedded text files (config/*)
    out.push(normalize(join(dirname(file), spec)));
  }
  return out;
}

const FILES = ["main.ts", ...sourceFiles("lib"), ...sourceFiles("commands")];
const GRAPH = new Map(FILES.map((f) => [f, importsOf(f)]));

Deno.test("layers: imports point only down, and transport and core do not import each other", () => {
  const bad: string[] = [];
  for (const [file, deps] of GRAPH) {
    const from = layerOf(file);
    for (const dep of deps) {
      const to = layerOf(dep);
      if (from === to) continue;
      const down = RANK[to] < RANK[from];
      if (!down) bad.push(`${file} -> ${dep} (${from} may not import ${to})`);
    }
  }
  assert.deepEqual(bad, []);
});

Deno.test("layers: other folders are entered through mod.ts (OS adapters by path, lazily)", () => {
  const bad: string[] = [];
  for (const [file, deps] of GRAPH) {
    const text = Deno.readTextFileSync(join(REPO_ROOT, file));
    for (const dep of deps) {
      if (entryFolder(dep) === entryFolder(file)) continue;
      if (dep.endsWith("/mod.ts") && dirname(dep) === entryFolder(dep)) continue;
      if (file.startsWith("commands/") && dep === "commands/mod.ts") continue;
      // An OS adapter that changes the system is imported by path, on first use.
      const spec = relative(dirname(file), dep);
      const lazy = text.includes(`import("${spec.startsWith(".") ? spec : `./${spec}`}")`) ||
        new RegExp(`import\\(\\s*"${spec.replaceAll(".", "\\.")}"`).test(text);
      const typeOnly = new RegExp(`import type [^;]*"[./]*${spec.replaceAll(".", "\\.")}"`)
        .test(text);
      if (dep.startsWith("lib/os/") && (lazy || typeOnly)) continue;
      bad.push(`${file} -> ${dep}`);
    }
  }
  assert.deepEqual(bad, []);
});

Deno.test("layers: no import cycle between modules", () => {
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === "done") return;
    if (state.get(file) === "open") {
      cycles.push([...path.slice(path.indexOf(file)), file].join(" -> "));
      return;
    }
    state.set(file, "open");
    for (const dep of GRAPH.get(file) ?? []) visit(dep, [...path, file]);
    state.set(file, "done");
  };
  for (const file of GRAPH.keys()) visit(file, []);
  assert.deepEqual(cycles, []);
});

Deno.test("layers: no module under lib/ or commands/ is over 500 lines", () => {
  const big = FILES.filter((f) => f !== "main.ts")
    .map((f) => [f, Deno.readTextFileSync(join(REPO_ROOT, f)).split("\n").length] as const)
    .filter(([, lines]) => lines > 500)
    .map(([f, lines]) => `${f}: ${lines}`);
  assert.deepEqual(big, []);
});

Deno.test("layers: lib/ holds only layer folders", () => {
  const top = [...Deno.readDirSync(join(REPO_ROOT, "lib"))].map((e) => e.name).sort();
  assert.deepEqual(
    top,
    Object.keys(RANK).filter((k) => k.startsWith("lib/")).map((k) => k.slice(4)).sort(),
  );
});
