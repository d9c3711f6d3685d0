#!/usr/bin/env node
// A long-lived headless Chromium page driven by JSON lines: tests/viewer/browser.py's other half.
//
//   node scripts/js/browser_session.mjs [--width 1280] [--height 800] [--timeout 30]
//
// Launches Chromium (chromium.mjs: /usr/bin/chromium or $CIM_CHROMIUM, WebGL 2 on SwiftShader), one context
// (viewport WIDTHxHEIGHT, deviceScaleFactor 1) and one page, then prints a ready line
//   {"id": null, "ok": true, "result": {"ready": true, "version", "launchSeconds"}}
// (or {"id": null, "ok": false, "error"} and exit 1 when Chromium cannot start). After that it reads one JSON
// command per line on stdin, {"id": n, "cmd": "name", ...params}, runs them one at a time in order and answers
// each with one line on stdout: {"id": n, "ok": true, "result": ...} or {"id": n, "ok": false, "error": "..."}.
// A bad command (unparsable line, unknown name, missing parameter, a page-side exception, a timeout) is an
// error answer, never a crash. Nothing else is printed on stdout; diagnostics (every console message, page
// error, blocked or failed request) go to stderr. Times are milliseconds; `timeout` defaults to --timeout.
//
//   goto       {url, waitUntil="load", timeout}        -> {url, status}
//   evaluate   {expression, arg, timeout}              -> the expression's value, JSON-serialised. The expression
//              is evaluated in the page as the body of `async (arg) => (expression)`, so `await` may be used
//              and a promise is awaited; if it evaluates to a function, that function is called with arg.
//   wait_for   {expression, arg, timeout, polling}     -> the first truthy value (page.waitForFunction; polling
//              is "raf" (default) or an interval in ms). The expression is re-evaluated at each poll; a
//              promise counts as truthy and is then awaited (within the timeout).
//   mouse      {action: move|down|up|click|dblclick|wheel, x, y, button="left", deltaX=0, deltaY=0, steps=1}
//              -> null. down/up/wheel first move to (x, y) when given.
//   click      {selector, timeout}                     -> null
//   fill       {selector, value, timeout}              -> null
//   press      {selector?, key, timeout}               -> null (keyboard.press on the focused element without
//              a selector)
//   select     {selector, value, timeout}              -> the selected option values
//   text       {selector, timeout}                     -> innerText
//   count      {selector}                              -> number of matching elements (no waiting)
//   visible    {selector}                              -> whether the first match is visible (no waiting)
//   screenshot {path, fullPage=false, timeout}         -> {path, width, height} (parent directories created)
//   events     {clear=false}                           -> {consoleErrors: [{text, location}], pageErrors:
//              [{message, stack}], externalRequests: [url], failedRequests: [{url, error}], badResponses:
//              [{url, status}], requests: n} since launch or the last clear
//   close      {}                                      -> null; closes Chromium and exits 0
// On stdin EOF: finishes the commands already read (at most 30 s more), closes Chromium and exits 0.
//
// Every request to a host other than 127.0.0.1, localhost or [::1] (http, https, ws, wss) is aborted before
// it leaves the machine and its url recorded in externalRequests; host names other than localhost do not
// even resolve (--host-resolver-rules).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';

import { CHROMIUM_ARGS, playwrightChromium } from './chromium.mjs';

const t0 = performance.now();
const out = process.stdout;
// stdout carries the protocol only: anything that logs goes to stderr.
console.log = console.info = console.debug = (...a) => console.error(...a);

function log(msg) {
  const t = ((performance.now() - t0) / 1000).toFixed(2);
  process.stderr.write(`[browser_session ${t}s] ${msg}\n`);
}

function send(obj) {
  let line;
  try {
    line = JSON.stringify(obj);
  } catch (err) {
    line = JSON.stringify({ id: obj.id ?? null, ok: false, error: `result is not JSON-serialisable: ${err.message}` });
  }
  out.write(line + '\n');
}

function usage(msg) {
  process.stderr.write(`browser_session: ${msg}\n` +
    'usage: node scripts/js/browser_session.mjs [--width 1280] [--height 800] [--timeout 30]\n');
  process.exit(2);
}

function options() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        width: { type: 'string', default: '1280' },
        height: { type: 'string', default: '800' },
        timeout: { type: 'string', default: '30' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    usage(err.message);
  }
  if (values.help) usage('help');
  const width = Number(values.width);
  const height = Number(values.height);
  const timeout = Number(values.timeout);
  if (!(Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0)) {
    usage('--width/--height must be positive integers');
  }
  if (!(timeout > 0)) usage('--timeout must be a positive number of seconds');
  return { width, height, timeoutMs: timeout * 1000 };
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);
const NETWORK_PROTOCOLS = new Set(['http:', 'https:', 'ws:', 'wss:', 'ftp:']);

/** Whether a url would leave the machine (data:, blob:, about: and the like never do). */
function isExternal(url) {
  let u;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  return NETWORK_PROTOCOLS.has(u.protocol) && !LOCAL_HOSTS.has(u.hostname);
}

function newEvents() {
  return { consoleErrors: [], pageErrors: [], externalRequests: [], failedRequests: [], badResponses: [], requests: 0 };
}

let events = newEvents();
let browser = null;
let context = null;
let page = null;
let closing = false;
let opt;

function need(params, ...names) {
  for (const n of names) {
    if (params[n] === undefined || params[n] === null) throw new Error(`missing parameter "${n}"`);
  }
}

function timeoutOf(params) {
  if (params.timeout === undefined || params.timeout === null) return opt.timeoutMs;
  const t = Number(params.timeout);
  if (!(t >= 0)) throw new Error(`bad timeout ${JSON.stringify(params.timeout)}`);
  return t;
}

/** The page-side source: expression evaluated with `arg` bound; a function value is called with arg. */
function wrapped(expression, arg, isAsync) {
  if (typeof expression !== 'string') throw new Error('"expression" must be a string');
  const argJson = arg === undefined ? 'undefined' : JSON.stringify(arg);
  // Newlines around the expression: a trailing // comment in it must not swallow the closing parenthesis.
  return `(${isAsync ? 'async ' : ''}(arg) => {\nconst __v = (\n${expression}\n);\n` +
    `return typeof __v === 'function' ? __v(arg) : __v;\n})(${argJson})`;
}

const MOUSE_ACTIONS = new Set(['move', 'down', 'up', 'click', 'dblclick', 'wheel']);

async function mouse(p) {
  need(p, 'action');
  if (!MOUSE_ACTIONS.has(p.action)) throw new Error(`unknown mouse action ${JSON.stringify(p.action)}`);
  const hasXY = p.x !== undefined && p.x !== null && p.y !== undefined && p.y !== null;
  const x = Number(p.x), y = Number(p.y);
  if (hasXY && !(Number.isFinite(x) && Number.isFinite(y))) throw new Error('x and y must be numbers');
  const button = p.button ?? 'left';
  const m = page.mouse;
  switch (p.action) {
    case 'move':
      need(p, 'x', 'y');
      await m.move(x, y, { steps: p.steps ?? 1 });
      break;
    case 'down':
    case 'up':
      if (hasXY) await m.move(x, y, { steps: p.steps ?? 1 });
      await m[p.action]({ button, clickCount: p.clickCount ?? 1 });
      break;
    case 'click':
      need(p, 'x', 'y');
      await m.click(x, y, { button, clickCount: p.clickCount ?? 1, delay: p.delay ?? 0 });
      break;
    case 'dblclick':
      need(p, 'x', 'y');
      await m.dblclick(x, y, { button, delay: p.delay ?? 0 });
      break;
    case 'wheel':
      if (hasXY) await m.move(x, y);
      await m.wheel(Number(p.deltaX ?? 0), Number(p.deltaY ?? 0));
      break;
  }
  return null;
}

const COMMANDS = {
  async goto(p) {
    need(p, 'url');
    let res;
    try {
      res = await page.goto(p.url, { waitUntil: p.waitUntil ?? 'load', timeout: timeoutOf(p) });
    } catch (err) {
      // A navigation that fails at the network level (blocked, refused) commits Chromium's error page just
      // after goto gives up: wait for it, or it would interrupt the next goto or evaluate.
      if (/net::ERR_/.test(String(err?.message))) {
        await page.waitForURL((u) => u.protocol === 'chrome-error:', { timeout: 2000 }).catch(() => {});
        await page.waitForLoadState('load', { timeout: 2000 }).catch(() => {});
      }
      throw err;
    }
    return { url: page.url(), status: res ? res.status() : null };
  },
  async evaluate(p) {
    need(p, 'expression');
    // page.evaluate has no timeout of its own: a promise that never settles must not block the queue.
    const ms = timeoutOf(p);
    let timer;
    const expired = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`page.evaluate: no result in ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([page.evaluate(wrapped(p.expression, p.arg, true)), expired]);
    } finally {
      clearTimeout(timer);
    }
  },
  async wait_for(p) {
    need(p, 'expression');
    const polling = p.polling ?? 'raf';
    if (polling !== 'raf' && !(Number(polling) > 0)) throw new Error(`bad polling ${JSON.stringify(polling)}`);
    const handle = await page.waitForFunction(wrapped(p.expression, p.arg, false), undefined, {
      timeout: timeoutOf(p),
      polling: polling === 'raf' ? 'raf' : Number(polling),
    });
    try {
      return await handle.jsonValue();
    } finally {
      await handle.dispose().catch(() => {});
    }
  },
  mouse,
  async click(p) {
    need(p, 'selector');
    await page.click(p.selector, { timeout: timeoutOf(p) });
    return null;
  },
  async fill(p) {
    need(p, 'selector', 'value');
    await page.fill(p.selector, String(p.value), { timeout: timeoutOf(p) });
    return null;
  },
  async press(p) {
    need(p, 'key');
    if (p.selector) await page.press(p.selector, p.key, { timeout: timeoutOf(p) });
    else await page.keyboard.press(p.key);
    return null;
  },
  async select(p) {
    need(p, 'selector', 'value');
    return await page.selectOption(p.selector, p.value, { timeout: timeoutOf(p) });
  },
  async text(p) {
    need(p, 'selector');
    return await page.innerText(p.selector, { timeout: timeoutOf(p) });
  },
  async count(p) {
    need(p, 'selector');
    return await page.locator(p.selector).count();
  },
  async visible(p) {
    need(p, 'selector');
    return await page.locator(p.selector).first().isVisible();
  },
  async screenshot(p) {
    need(p, 'path');
    const file = path.resolve(p.path);
    await mkdir(path.dirname(file), { recursive: true });
    await page.screenshot({ path: file, fullPage: !!p.fullPage, timeout: timeoutOf(p) });
    const size = p.fullPage
      ? await page.evaluate(() => ({
        width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight,
      }))
      : page.viewportSize();
    return { path: file, width: size.width, height: size.height };
  },
  async events(p) {
    const snapshot = events;
    if (p.clear) events = newEvents();
    return snapshot;
  },
  async close() {
    await shutdown(0, false);
    return null;
  },
};

async function run(line) {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (err) {
    send({ id: null, ok: false, error: `not JSON: ${err.message}` });
    return;
  }
  if (!msg || typeof msg !== 'object' || Array.isArray(msg)) {
    send({ id: null, ok: false, error: 'a command must be a JSON object' });
    return;
  }
  const { id = null, cmd, ...params } = msg;
  const fn = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : null;
  if (!fn) {
    send({ id, ok: false, error: `unknown command ${JSON.stringify(cmd)}` });
    return;
  }
  const t = performance.now();
  try {
    if (!page || closing) throw new Error(closing ? 'the browser is closing' : 'the browser is not running');
    const result = await fn(params);
    send({ id, ok: true, result: result === undefined ? null : result });
    log(`${cmd} #${id} ok in ${Math.round(performance.now() - t)} ms`);
  } catch (err) {
    // Playwright colours its call logs: plain text reads better in a pytest report.
    const error = String(err?.message ?? err).replace(/\u001b\[[0-9;]*m/g, '');
    send({ id, ok: false, error });
    log(`${cmd} #${id} failed in ${Math.round(performance.now() - t)} ms: ${error}`);
  }
  if (cmd === 'close') process.exit(0);
}

async function shutdown(code, exit = true) {
  if (!closing) {
    closing = true;
    // A hung Chromium must not keep us alive: exiting makes playwright kill its process group.
    setTimeout(() => { log('browser.close() hung: exiting'); process.exit(code || 1); }, 10_000).unref();
    if (browser) await browser.close().catch((err) => log(`browser.close: ${err.message}`));
    log('closed');
  }
  if (exit) process.exit(code);
}

function watch(p) {
  p.on('console', (msg) => {
    const loc = msg.location();
    const where = loc?.url ? ` (${loc.url}:${loc.lineNumber}:${loc.columnNumber})` : '';
    log(`console.${msg.type()}: ${msg.text()}${where}`);
    if (msg.type() !== 'error') return;
    // Chromium logs each request we blocked as a failed resource: that is reported in externalRequests.
    if (msg.text().includes('net::ERR_BLOCKED_BY_CLIENT') && loc?.url && isExternal(loc.url)) return;
    events.consoleErrors.push({ text: msg.text(), location: loc ?? null });
  });
  p.on('pageerror', (err) => {
    log(`pageerror: ${err?.stack || err}`);
    events.pageErrors.push({ message: String(err?.message ?? err), stack: err?.stack ?? null });
  });
  p.on('crash', () => {
    log('page crashed');
    events.pageErrors.push({ message: 'the page crashed', stack: null });
  });
  p.on('request', () => { events.requests++; });
  p.on('requestfailed', (req) => {
    if (isExternal(req.url())) return; // aborted by us: counted in externalRequests
    const error = req.failure()?.errorText ?? 'failed';
    log(`requestfailed: ${req.url()} ${error}`);
    events.failedRequests.push({ url: req.url(), error });
  });
  p.on('response', (res) => {
    if (res.status() >= 400) {
      log(`response ${res.status()}: ${res.url()}`);
      events.badResponses.push({ url: res.url(), status: res.status() });
    }
  });
}

async function launch() {
  const { chromium, executablePath } = await playwrightChromium();
  browser = await chromium.launch({
    executablePath,
    headless: true,
    // Belt and braces beside the route below: no name but localhost resolves, so nothing is looked up either.
    args: [...CHROMIUM_ARGS, `--host-resolver-rules=MAP * ~NOTFOUND, ${[...LOCAL_HOSTS].map((h) => `EXCLUDE ${h}`).join(', ')}`],
    timeout: 60_000,
    // Our own signal handlers close Chromium (shutdown below); playwright kills it on process exit regardless.
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  browser.on('disconnected', () => {
    if (!closing) {
      log('Chromium disconnected');
      page = null;
    }
  });
  context = await browser.newContext({ viewport: { width: opt.width, height: opt.height }, deviceScaleFactor: 1 });
  context.setDefaultTimeout(opt.timeoutMs);
  context.setDefaultNavigationTimeout(opt.timeoutMs);
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (!isExternal(url)) return route.continue();
    log(`blocked external request: ${url}`);
    events.externalRequests.push(url);
    return route.abort('blockedbyclient');
  });
  await context.routeWebSocket((url) => isExternal(url.href), (ws) => {
    log(`blocked external WebSocket: ${ws.url()}`);
    events.externalRequests.push(ws.url());
    return ws.close({ code: 1008, reason: 'blocked by browser_session' });
  });
  page = await context.newPage();
  watch(page);
  context.on('page', (p) => {
    if (p !== page) {
      log(`another page opened: ${p.url()}`);
      watch(p);
    }
  });
  return browser.version();
}

async function main() {
  opt = options();
  let version;
  try {
    version = await launch();
  } catch (err) {
    send({ id: null, ok: false, error: `Chromium did not start: ${err?.message ?? err}` });
    await shutdown(1);
    return;
  }
  const launchSeconds = +((performance.now() - t0) / 1000).toFixed(2);
  log(`Chromium ${version} up in ${launchSeconds} s, viewport ${opt.width}x${opt.height}`);
  send({ id: null, ok: true, result: { ready: true, version, launchSeconds } });

  let queue = Promise.resolve();
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    queue = queue.then(() => run(line));
  });
  rl.on('close', () => {
    log('stdin closed');
    const force = setTimeout(() => { log('commands still running 30 s after EOF'); shutdown(0); }, 30_000);
    force.unref();
    queue.then(() => shutdown(0));
  });
}

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => { log(`${sig}`); shutdown(0); });
}
process.on('unhandledRejection', (err) => log(`unhandled rejection: ${err?.stack ?? err}`));

main().catch((err) => {
  log(`fatal: ${err?.stack ?? err}`);
  send({ id: null, ok: false, error: String(err?.message ?? err) });
  shutdown(1);
});
