import {
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  writeFile,
} from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

/** Where the page's sources live: this folder. */
const sourceDir = dirname(fileURLToPath(import.meta.url));

/** Where the bundle goes by default, and where src/page.ts serves it from. */
export const defaultOutDir = join(sourceDir, "..", "dist", "web");

/**
 * Bundle the browser page into `outDir`: `index.html` and content-hashed
 * `assets/main-<hash>.js` and `assets/style-<hash>.css`. The hashes let the
 * server cache assets forever; only index.html must be revalidated.
 */
export async function buildWeb(outDir: string = defaultOutDir): Promise<void> {
  // Made beside its place and moved in whole, so that a build running at
  // the same time (two `npm start`s) cannot remove files from under this
  // one, and a server reading outDir never finds a page half made.
  await mkdir(dirname(outDir), { recursive: true });
  const staging = await mkdtemp(`${outDir}.tmp-`);
  const assetsDir = join(staging, "assets");
  await mkdir(assetsDir);
  const result = await build({
    entryPoints: [join(sourceDir, "main.ts"), join(sourceDir, "style.css")],
    outdir: assetsDir,
    entryNames: "[name]-[hash]",
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022", "chrome100", "firefox100", "safari15"],
    minify: true,
    sourcemap: "linked",
    metafile: true,
    logLevel: "warning",
  });
  const assetOf = (entry: string): string => {
    for (const [out, meta] of Object.entries(result.metafile.outputs)) {
      if (
        meta.entryPoint !== undefined &&
        basename(meta.entryPoint) === entry
      ) {
        return `/assets/${basename(out)}`;
      }
    }
    throw new Error(`esbuild produced no output for ${entry}`);
  };
  const template = await readFile(join(sourceDir, "index.html"), "utf8");
  const html = template
    .replace("/assets/main.js", assetOf("main.ts"))
    .replace("/assets/style.css", assetOf("style.css"));
  await writeFile(join(staging, "index.html"), html);
  await rm(outDir, { recursive: true, force: true });
  try {
    await rename(staging, outDir);
  } catch (e) {
    // Another build moved its page in first: the same sources, the same
    // content-hashed files.
    if (
      !["ENOTEMPTY", "EEXIST"].includes((e as NodeJS.ErrnoException).code ?? "")
    )
      throw e;
    await rm(staging, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // Quiet on success, so that `npm start` prints only the server's own lines.
  await buildWeb();
}
