// esbuild plugins for serverless-esbuild (custom.esbuild.plugins in serverless.yml), which
// require()s this file with the Serverless instance. CommonJS: it is loaded by the framework, not
// by tsx, so it cannot be TypeScript.
//
// `bundle-outputs`: whatever describes a bundle but is no part of what runs goes beside the zips,
// never into them. serverless-esbuild zips every file of its build directory, so:
// - each function's esbuild metafile (what went into the bundle: every module and its bytes) is
//   written to <package>/esbuild/functions/<name>.meta.json;
// - with `sourcemap: external` (the default, see the `sourcemap` param), esbuild writes the map
//   but no `sourceMappingURL` comment, and the map is moved out of the build directory to
//   <package>/esbuild/functions/<name>.mjs.map. With `linked` or `inline`, the map stays in the
//   bundle's zip, where Node's --enable-source-maps finds it.
// <package> is `.serverless`, or the --package directory, which osls fills from `.serverless`.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

module.exports = (serverless) => [
  {
    name: 'bundle-outputs',
    setup(build) {
      const options = build.initialOptions;
      options.metafile = true;
      build.onEnd((result) => {
        if (result.errors.length > 0 || !result.metafile) return;
        const workingDir = options.absWorkingDir ?? process.cwd();
        // serverless-esbuild builds the entry `functions/x.ts` into `<build dir>/functions`.
        const entry = [options.entryPoints].flat()[0];
        if (typeof entry !== 'string' || !options.outdir) throw new Error('bundle-outputs: expected one entry point and an outdir');
        const buildRoot = path.resolve(workingDir, options.outdir, path.relative(path.dirname(entry), '.'));
        const target = path.join(serverless.serviceDir, '.serverless', 'esbuild');
        for (const [output, info] of Object.entries(result.metafile.outputs)) {
          const file = path.resolve(workingDir, output);
          const relative = path.relative(buildRoot, file);
          if (relative.startsWith('..')) throw new Error(`bundle-outputs: ${file} is outside ${buildRoot}`);
          if (info.entryPoint) {
            const meta = path.join(target, relative.replace(/\.[cm]?js$/, '.meta.json'));
            fs.mkdirSync(path.dirname(meta), { recursive: true });
            fs.writeFileSync(meta, JSON.stringify(result.metafile));
          }
          if (file.endsWith('.map') && options.sourcemap === 'external') {
            const moved = path.join(target, relative);
            fs.mkdirSync(path.dirname(moved), { recursive: true });
            fs.renameSync(file, moved);
          }
        }
      });
    },
  },
];
