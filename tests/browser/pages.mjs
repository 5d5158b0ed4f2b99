// The hosted pages (sign-in, device activation, consent, sign-out) in headless Chromium (Debian's
// package), driven the way a person would: keyboard and taps, no JavaScript of ours on the pages.
//
// For each page, at a phone width (390 px) and a desktop width (1280 px):
//   - axe-core checks it (WCAG 2.0/2.1 A and AA rules, plus best practices): any violation fails;
//   - the page's own style sheet applied under its strict content security policy (a policy that
//     blocked it would leave an unstyled page and a console error: both fail);
//   - a screenshot is written (to docs/screenshots with --update-screenshots, else a temp dir).
// Then the device flow's wording is checked: a wrong code, an already used code, the profile
// chooser with its kids badge, and the QR endpoint.
//
// Usage: node pages.mjs <chromium path> [--update-screenshots]
// The server binary: $PLAYHEAD_BIN, else $CARGO_TARGET_DIR/debug/playhead (built if missing).

import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");
const [chromiumPath, ...flags] = process.argv.slice(2);
const update = flags.includes("--update-screenshots");
const shots = update ? join(ROOT, "docs", "screenshots") : mkdtempSync(join(tmpdir(), "playhead-shots-"));
mkdirSync(shots, { recursive: true });
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const EMAIL = "viewer@example.com";
const PASSWORD = "correct horse battery";
const WIDTHS = { phone: { width: 390, height: 844 }, desktop: { width: 1280, height: 800 } };

let failures = 0;
let passed = 0;
function check(ok, what) {
  if (ok) {
    passed += 1;
  } else {
    failures += 1;
    console.error(`FAIL: ${what}`);
  }
}

function binary() {
  const target = process.env.CARGO_TARGET_DIR || join(ROOT, "target");
  const path = process.env.PLAYHEAD_BIN || join(target, "debug", "playhead");
  if (!existsSync(path)) execFileSync("cargo", ["build", "-q", "-p", "playhead"], { cwd: ROOT, stdio: "inherit" });
  return path;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

const bin = binary();
const data = mkdtempSync(join(tmpdir(), "playhead-browser-"));
const port = await freePort();
// Chromium keeps `Secure` (and so `__Host-`) cookies on localhost over plain HTTP.
const base = `http://localhost:${port}`;
// Only settings go to the server: it refuses unknown PLAYHEAD_* keys.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PLAYHEAD_")));
// One address opens every page at two widths within a minute: more code and PIN attempts than
// the per-address limit lets a person make (its refusal page is not what these checks look at).
Object.assign(env, {
  PLAYHEAD_DATA_DIR: data,
  PLAYHEAD_ISSUER: base,
  PLAYHEAD_IDENTITY__ATTEMPTS_PER_ADDRESS_PER_MINUTE: "1000",
  RUST_LOG: "error",
});

function admin(args, input) {
  return JSON.parse(execFileSync(bin, ["admin", ...args], { env, input, encoding: "utf8" }));
}

const account = admin(["create-account", "--email", EMAIL]).account_id;
admin(["create-profile", "--account", account, "--name", "Sam"]);
const robin = admin(["create-profile", "--account", account, "--name", "Robin & Alex"]).profile_id;
admin(["create-profile", "--account", account, "--name", "Mia", "--kids"]);
admin(["set-password", "--account", account], `${PASSWORD}\n`);
const tv = admin(["client", "create", "--name", "Living room TV", "--type", "public", "--grant", "device_code"]).client_id;
// Redirect URIs must be loopback literals (RFC 8252 section 8.3), not localhost.
const redirectOrigin = `http://127.0.0.1:${port}`;
const redirect = `${redirectOrigin}/callback`;
const web = admin(["client", "create", "--name", "Playhead Web", "--type", "public",
  "--grant", "authorization_code", "--redirect-uri", redirect]).client_id;

const server = spawn(bin, ["serve", "--listen", `127.0.0.1:${port}`, "--metrics-listen", "off"], {
  env, stdio: ["ignore", "ignore", "pipe"],
});
let serverLog = "";
server.stderr.on("data", (d) => { serverLog += d; });

async function up() {
  for (let i = 0; i < 200; i += 1) {
    try {
      if ((await fetch(`${base}/livez`)).ok) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`playhead serve did not start: ${serverLog.slice(-2000)}`);
}

async function deviceGrant() {
  const r = await fetch(`${base}/oauth/device_authorization`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: tv, scope: "history:read history:write" }),
  });
  if (!r.ok) throw new Error(`device_authorization: ${r.status} ${await r.text()}`);
  return r.json();
}

let browser;
try {
  await up();
  // Robin & Alex's profile has a parental PIN (set by the account, signed in just now).
  const token = admin(["token", "--account", account, "--scope", "profiles:write history:read"]).access_token;
  const set = await fetch(`${base}/v1/profiles/${robin}/pin`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ pin: "2580" }),
  });
  if (set.status !== 204) throw new Error(`setting the PIN: ${set.status} ${await set.text()}`);
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-gpu"] });

  for (const [size, viewport] of Object.entries(WIDTHS)) {
    const context = await browser.newContext({ viewport, deviceScaleFactor: 1, locale: "en-GB" });
    const page = await context.newPage();
    const consoleErrors = [];
    // A policy violation is logged as a console error; so is every 4xx page itself ("Failed to
    // load resource"), which the status checks already cover.
    page.on("console", (m) => {
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) consoleErrors.push(m.text());
    });

    // Each page: styled, no policy violation, no axe violation, a screenshot.
    async function inspect(name, expectStatus, response) {
      check(response.status() === expectStatus, `${name} (${size}): status ${response.status()}, expected ${expectStatus}`);
      const csp = response.headers()["content-security-policy"] || "";
      check(csp.startsWith("default-src 'none'") && !csp.includes("unsafe") && !csp.includes("script-src"),
        `${name} (${size}): strict content security policy, got ${csp}`);
      const styled = await page.evaluate(() => getComputedStyle(document.querySelector("main")).borderRadius);
      check(styled !== "0px", `${name} (${size}): the style sheet applied (main border-radius ${styled})`);
      check(consoleErrors.length === 0, `${name} (${size}): console errors ${JSON.stringify(consoleErrors)}`);
      consoleErrors.length = 0;
      // Through the DevTools protocol: the page's policy forbids every script, axe included.
      await page.evaluate(AXE);
      const result = await page.evaluate(() => globalThis.axe.run(document, {
        runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] },
      }));
      for (const v of result.violations) {
        check(false, `${name} (${size}): axe ${v.id} (${v.impact}): ${v.help}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
      }
      check(result.passes.length > 10, `${name} (${size}): axe ran (${result.passes.length} rules passed)`);
      await page.screenshot({ path: join(shots, `${name}-${size}.png`), fullPage: true });
    }

    // Sign in: first a wrong password (the form again, the reason announced), then the right one.
    const grant = await deviceGrant();
    let res = await page.goto(`${base}/device?user_code=${encodeURIComponent(grant.user_code)}`);
    check(page.url().startsWith(`${base}/signin`), `${size}: the device page asks to sign in first (${page.url()})`);
    await inspect("signin", 200, res);
    await page.getByLabel("E-mail address").fill(EMAIL);
    await page.getByLabel("Password").fill("not the password");
    [res] = await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign in" }).click()]);
    check((await page.getByRole("alert").textContent()).includes("Wrong e-mail address or password"),
      `${size}: a wrong password is announced`);
    check(await page.getByLabel("E-mail address").inputValue() === EMAIL, `${size}: the e-mail is kept`);
    await inspect("signin-error", 400, res);
    await page.getByLabel("Password").fill(PASSWORD);
    // Keyboard only: Enter submits.
    [res] = await Promise.all([page.waitForNavigation(), page.getByLabel("Password").press("Enter")]);

    // Back on the device page with the code from the QR link: which app, what, which profile.
    check(page.url().includes("/device?user_code="), `${size}: back on the device page (${page.url()})`);
    await inspect("device-confirm", 200, res);
    const body = await page.textContent("main");
    check(body.includes("Living room TV") && body.includes(grant.user_code), `${size}: app name and code shown`);
    check(await page.getByRole("radio", { name: "Mia Kids" }).count() === 1,
      `${size}: the kids profile has its badge in its accessible name`);
    const pinned = page.getByRole("radio", { name: "Robin & Alex PIN" });
    check(await pinned.count() === 1, `${size}: names are shown as typed, with the PIN badge`);
    // The PIN profile with a wrong PIN: the same step again, the reason beside the field.
    await pinned.check();
    await page.getByLabel("Profile PIN").fill("0000");
    [res] = await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Allow" }).click()]);
    check((await page.getByRole("alert").textContent()).includes("not right"), `${size}: a wrong PIN is announced`);
    check(await page.getByRole("radio", { name: "Robin & Alex PIN" }).isChecked(), `${size}: the chosen profile is kept`);
    await inspect("device-pin-wrong", 400, res);
    await page.getByLabel("Profile PIN").fill("2580");
    [res] = await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Allow" }).click()]);
    check((await page.textContent("h1")) === "Device connected", `${size}: approved with the right PIN`);
    await inspect("device-connected", 200, res);

    // The same code again: already used. Typed lower case with no dash: still understood.
    res = await page.goto(`${base}/device`);
    await inspect("device-code", 200, res);
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => document.activeElement?.id);
    check(focused === "user_code", `${size}: the first Tab reaches the code field (${focused})`);
    await page.keyboard.type(grant.user_code.replace("-", "").toLowerCase());
    [res] = await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
    check((await page.getByRole("alert").textContent()).includes("already used"), `${size}: a used code is named as such`);
    check(await page.getByLabel("Code shown on the device").getAttribute("aria-invalid") === "true",
      `${size}: the field is marked invalid`);
    await inspect("device-code-used", 400, res);

    // A code no device asked for, and one of the wrong shape.
    res = await page.goto(`${base}/device?user_code=bcdf-ghjz`);
    check((await page.getByRole("alert").textContent()).includes("not right"), `${size}: an unknown code is named as such`);
    await inspect("device-code-wrong", 400, res);
    res = await page.goto(`${base}/device?user_code=12345`);
    check((await page.getByRole("alert").textContent()).includes("8 letters"), `${size}: a malformed code explains the shape`);

    // The consent page of the authorization endpoint.
    const q = new URLSearchParams({
      client_id: web, redirect_uri: redirect, response_type: "code", scope: "history:read recs:read",
      code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", code_challenge_method: "S256", state: "xyz",
    });
    res = await page.goto(`${base}/oauth/authorize?${q}`);
    check((await page.textContent("main")).includes("Playhead Web"), `${size}: consent names the app`);
    check((res.headers()["content-security-policy"] || "").includes(`form-action 'self' ${redirectOrigin}`),
      `${size}: consent's policy lets the decision redirect to the app`);
    await inspect("consent", 200, res);

    // Sign out.
    [res] = await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign out" }).click()]);
    await inspect("signed-out", 200, res);
    await context.close();
  }

  // The QR code for TV apps: an SVG of verification_uri_complete.
  const grant = await deviceGrant();
  const qr = await fetch(`${base}/device/qr?user_code=${grant.user_code}`);
  const svg = await qr.text();
  check(qr.status === 200 && qr.headers.get("content-type") === "image/svg+xml", `qr: ${qr.status} ${qr.headers.get("content-type")}`);
  check(svg.includes("<svg") && svg.includes(grant.user_code), "qr: an SVG named after its code");
  const bad = await fetch(`${base}/device/qr?user_code=nope`);
  check(bad.status === 400 && (await bad.json()).errors?.[0]?.field === "user_code", `qr: a bad code is a 400 naming user_code (${bad.status})`);
} finally {
  if (browser) await browser.close();
  server.kill("SIGTERM");
  rmSync(data, { recursive: true, force: true });
}

console.log(`screenshots: ${shots}`);
console.log(`browser: ${passed} passed, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
