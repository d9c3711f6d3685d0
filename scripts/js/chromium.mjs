// Headless Chromium for the JS tools (cesium_load.mjs, browser_session.mjs): one flag list, one way to find it.
//
// Chromium is Debian's /usr/bin/chromium (scripts/sysdeps.sh installs it) unless CIM_CHROMIUM names another
// binary; playwright-core comes from the repository's node_modules (`make setup` runs npm ci). There is no GPU:
// WebGL 2 runs on SwiftShader (--use-angle=swiftshader --enable-unsafe-swiftshader). `headless: true` in
// chromium.launch() adds --headless.
import { createRequire } from 'node:module';
import { stat } from 'node:fs/promises';

const require = createRequire(import.meta.url);

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage', // a small /dev/shm (containers) otherwise crashes the GPU process
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
];

/** The Chromium binary: $CIM_CHROMIUM or /usr/bin/chromium. */
export function chromiumPath() {
  return process.env.CIM_CHROMIUM || '/usr/bin/chromium';
}

/**
 * playwright-core's `chromium` and the binary to launch, or an Error that says how to install what is missing.
 * @returns {Promise<{chromium: import('playwright-core').BrowserType, executablePath: string}>}
 */
export async function playwrightChromium() {
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch {
    throw new Error('node_modules/playwright-core is missing: run `make setup` (npm ci) at the repository root');
  }
  const executablePath = chromiumPath();
  if (!(await stat(executablePath).catch(() => null))) {
    throw new Error(`no Chromium at ${executablePath}: run \`make setup\` (apt chromium) or export CIM_CHROMIUM`);
  }
  return { chromium, executablePath };
}
