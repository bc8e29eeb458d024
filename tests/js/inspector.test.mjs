// The MCP Inspector's CLI (`npx @modelcontextprotocol/inspector@2.12.0 --cli URL ...`, installed
// from package.json into node_modules; --no-install keeps npx from fetching anything) lists and
// calls the core tools of an erlmcp node over Streamable HTTP. Each invocation is one short
// client session; the tests assert on the JSON it prints on stdout.
//
// By default the CLI negotiates the 2025-11-25 handshake (`--protocol-era legacy`); the `auto`
// cases let it try 2026-07-28 first (stateless when the node serves it, else a session), so only
// tools that work either way are called there.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { CORE_TOOLS, startNode, within } from './lib/erlmcp.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const INSPECTOR = '@modelcontextprotocol/inspector@2.12.0';
const NODE_NAME = 'js-inspector@127.0.0.1';
const RUN_TIMEOUT_MS = 90_000;

let node;
let home;
before(async () => {
  // The CLI keeps a catalog and client config under $HOME/.mcp-inspector: give it a scratch HOME.
  home = await mkdtemp(path.join(os.tmpdir(), 'erlmcp-inspector-'));
  node = await startNode(NODE_NAME);
});
after(async () => {
  if (home) await rm(home, { recursive: true, force: true });
  if (!node) return;
  const alive = node.alive();
  const code = await node.stop();
  assert.ok(alive, `the node died during the tests; its log:\n${node.tail()}`);
  assert.equal(code, 0, `the node did not exit 0 after SIGTERM; its log:\n${node.tail()}`);
});

/** Runs `npx --no-install INSPECTOR --cli URL ...args`; resolves with its exit code and output. */
function inspector(args) {
  const argv = ['--no-install', INSPECTOR, '--cli', node.url, ...args];
  const child = spawn('npx', argv, {
    cwd: HERE,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HOME: home, npm_config_update_notifier: 'false', NO_COLOR: '1' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const done = new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  const command = `npx ${argv.join(' ')}`;
  return within(RUN_TIMEOUT_MS, command, done)
    .catch((e) => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
      throw e;
    })
    .then((r) => ({ ...r, command }));
}

/** Runs the CLI, which must exit 0 and print one JSON document; returns it. */
async function inspectorJson(args) {
  const r = await inspector(args);
  const evidence = () =>
    `\`${r.command}\` exited ${r.code ?? r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}\n` +
    `--- log of node ${node.name} (tail)\n${node.tail()}`;
  assert.equal(r.code, 0, evidence());
  try {
    return JSON.parse(r.stdout);
  } catch (e) {
    assert.fail(`stdout is not one JSON document (${e.message})\n${evidence()}`);
  }
}

const listedNames = (out) => out.tools.map((t) => t.name);

describe('MCP Inspector CLI over Streamable HTTP', { concurrency: 2, timeout: 300_000 }, () => {
  test('--method tools/list lists the core tools', async () => {
    const out = await inspectorJson(['--method', 'tools/list']);
    const names = listedNames(out);
    for (const name of CORE_TOOLS) assert.ok(names.includes(name), `${name} missing: ${names}`);
    const echo = out.tools.find((t) => t.name === 'echo');
    assert.deepEqual(echo.inputSchema, { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] });
  });

  test('--method tools/call --tool-name echo --tool-arg text=hi', async () => {
    const out = await inspectorJson(['--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', 'text=hi']);
    assert.deepEqual(out, { content: [{ type: 'text', text: 'hi' }], structuredContent: { text: 'hi' } });
  });

  // The other core tools; each CLI run is a session of its own (the kv key starts absent).
  const calls = [
    [['--tool-name', 'add', '--tool-arg', 'a=2', 'b=3'], { sum: 5 }],
    [['--tool-name', 'sleep', '--tool-arg', 'ms=20'], { slept_ms: 20 }],
    [['--tool-name', 'kv_get', '--tool-arg', 'key=k'], { key: 'k', found: false, value: null }],
    [['--tool-name', 'kv_set', '--tool-args-json', '{"key":"k","value":{"n":[1,2]}}'], { key: 'k', ok: true }],
    [['--tool-name', 'kv_list'], { entries: {} }],
    [['--tool-name', 'kv_delete', '--tool-arg', 'key=k'], { key: 'k', deleted: false }],
  ];
  for (const [args, want] of calls) {
    test(`--method tools/call ${args.join(' ')}`, async () => {
      const out = await inspectorJson(['--method', 'tools/call', ...args]);
      assert.deepEqual(out.structuredContent, want, JSON.stringify(out));
    });
  }

  test('--method tools/call --tool-name node_info', async () => {
    const info = await inspectorJson(['--method', 'tools/call', '--tool-name', 'node_info']);
    assert.equal(info.structuredContent.node, NODE_NAME, JSON.stringify(info));
    assert.ok(info.structuredContent.session_id, JSON.stringify(info));
  });

  test('an unknown tool: non-zero exit and an error naming it', async () => {
    const r = await inspector(['--method', 'tools/call', '--tool-name', 'no_such_tool', '--format', 'json']);
    assert.notEqual(r.code, 0, `${r.command}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout + r.stderr, /no_such_tool/);
  });

  test('--protocol-era auto: tools/list, tools/call echo, add, kv_get', async () => {
    const listed = await inspectorJson(['--protocol-era', 'auto', '--method', 'tools/list']);
    for (const name of CORE_TOOLS) assert.ok(listedNames(listed).includes(name), `${name} missing`);
    const out = await inspectorJson([
      '--protocol-era', 'auto', '--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', 'text=hi',
    ]);
    assert.deepEqual(out.structuredContent, { text: 'hi' });
    const added = await inspectorJson([
      '--protocol-era', 'auto', '--method', 'tools/call', '--tool-name', 'add', '--tool-arg', 'a=40', 'b=2',
    ]);
    assert.deepEqual(added.structuredContent, { sum: 42 });
    // kv_get: stateless (2026-07-28) it has no session and says so in an isError result (the
    // CLI then exits 5); in a 2025-11-25 session the key is simply absent.
    const kv = await inspector(['--protocol-era', 'auto', '--method', 'tools/call', '--tool-name', 'kv_get',
      '--tool-arg', 'key=k', '--format', 'json']);
    const { result } = JSON.parse(kv.stdout);
    if (result.isError) {
      assert.equal(kv.code, 5, `${kv.command}\n${kv.stdout}\n${kv.stderr}`);
      assert.match(result.content[0].text, /session_open/);
    } else {
      assert.equal(kv.code, 0, `${kv.command}\n${kv.stdout}\n${kv.stderr}`);
      assert.deepEqual(result.structuredContent, { key: 'k', found: false, value: null });
    }
  });

  test('resources/read and prompts/get', async () => {
    const read = await inspectorJson(['--method', 'resources/read', '--uri', 'erlmcp://node/info']);
    assert.equal(JSON.parse(read.contents[0].text).node, NODE_NAME, JSON.stringify(read));
    const prompt = await inspectorJson(['--method', 'prompts/get', '--prompt-name', 'session_summary']);
    assert.equal(prompt.messages[0].role, 'user', JSON.stringify(prompt));
  });
});
