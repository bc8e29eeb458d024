// The official TypeScript MCP SDK (`@modelcontextprotocol/sdk`, pinned in package.json) drives an
// erlmcp node over Streamable HTTP with its StreamableHTTPClientTransport: a revision 2025-11-25
// session (the 1.x SDK has no 2026-07-28). Every HTTP exchange is recorded (lib/erlmcp.mjs) and
// printed with the node's log when a test fails.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  LATEST_PROTOCOL_VERSION,
  LoggingMessageNotificationSchema,
  McpError,
  ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

import { CORE_TOOLS, HttpLog, WAIT_MS, startNode, within, withEvidence } from './lib/erlmcp.mjs';

const NODE_NAME = 'js-sdk@127.0.0.1';
const NODE_INFO_URI = 'erlmcp://node/info';
const SESSION_STATE_URI = 'erlmcp://session/state';

let node;
before(async () => {
  node = await startNode(NODE_NAME);
});
after(async () => {
  if (!node) return;
  const alive = node.alive();
  const code = await node.stop();
  assert.ok(alive, `the node died during the tests; its log:\n${node.tail()}`);
  assert.equal(code, 0, `the node did not exit 0 after SIGTERM; its log:\n${node.tail()}`);
});

const it = (name, body) => test(name, { timeout: 120_000 }, withEvidence(() => node, body));

/** A connected client whose HTTP exchanges are recorded in ctx.logs (closed after the test). */
async function connect(t, ctx, { drop } = {}) {
  const log = new HttpLog(`client #${ctx.logs.length + 1}`);
  ctx.logs.push(log);
  const transport = new StreamableHTTPClientTransport(new URL(node.url), { fetch: log.fetch({ drop }) });
  const client = new Client({ name: 'erlmcp-js-tests', version: '1.0.0' }, { capabilities: {} });
  const notes = [];
  client.fallbackNotificationHandler = async (n) => {
    notes.push(n);
    log.changed();
  };
  await within(WAIT_MS, 'connect (initialize)', client.connect(transport));
  t.after(() => client.close());
  return { client, transport, log, notes };
}

/** Calls a tool that must succeed; returns its structured content. */
async function call(client, name, args, options) {
  const r = await client.callTool({ name, arguments: args }, undefined, options);
  assert.ok(!r.isError, `${name}(${JSON.stringify(args)}) failed: ${JSON.stringify(r)}`);
  assert.ok(r.structuredContent, `${name} returned no structuredContent: ${JSON.stringify(r)}`);
  return r.structuredContent;
}

const onlyText = (contents) => {
  assert.equal(contents.length, 1, JSON.stringify(contents));
  assert.equal(typeof contents[0].text, 'string', JSON.stringify(contents));
  return contents[0].text;
};

describe('TypeScript SDK over Streamable HTTP', () => {
  it('initialize: server info, capabilities, session id, revision 2025-11-25', async (t, ctx) => {
    const { client, transport, log } = await connect(t, ctx);
    assert.equal(client.getServerVersion()?.name, 'erlmcp');
    assert.ok(client.getServerVersion()?.version);
    assert.equal(transport.protocolVersion, LATEST_PROTOCOL_VERSION);
    assert.equal(LATEST_PROTOCOL_VERSION, '2025-11-25');
    const caps = client.getServerCapabilities();
    assert.ok(caps?.tools && caps.prompts && caps.logging, JSON.stringify(caps));
    assert.equal(caps.resources?.subscribe, true, JSON.stringify(caps));

    const [init] = log.posts('initialize');
    assert.equal(init.status, 200);
    const sid = init.respHeaders['mcp-session-id'];
    assert.ok(sid && sid.length >= 16, `initialize issued no session id: ${init}`);
    assert.equal(transport.sessionId, sid);
    const initialized = await log.waitFor(
      (x) => x.rpcMethod === 'notifications/initialized' && x.status !== null,
      'the answer to notifications/initialized',
    );
    assert.equal(initialized.status, 202);
    assert.equal(initialized.headers['mcp-session-id'], sid);
    await client.ping();
  });

  it('lists the core tools with their schemas', async (t, ctx) => {
    const { client } = await connect(t, ctx);
    const tools = new Map();
    let cursor;
    do {
      const page = await client.listTools(cursor ? { cursor } : undefined);
      for (const tool of page.tools) tools.set(tool.name, tool);
      cursor = page.nextCursor;
    } while (cursor);
    for (const name of CORE_TOOLS) {
      const tool = tools.get(name);
      assert.ok(tool, `${name} missing from tools/list: ${[...tools.keys()]}`);
      assert.ok(tool.description, name);
      assert.equal(tool.inputSchema.type, 'object', name);
      assert.equal(tool.outputSchema?.type, 'object', name);
    }
    assert.deepEqual(tools.get('echo').inputSchema.required, ['text']);
    assert.deepEqual([...tools.get('add').inputSchema.required].sort(), ['a', 'b']);
    assert.deepEqual(tools.get('sleep').inputSchema.required, ['ms']);
  });

  it('calls every core tool, session state included', async (t, ctx) => {
    const { client, transport } = await connect(t, ctx);
    await client.listTools(); // the SDK checks structuredContent against the listed output schemas
    const called = new Set();
    const tool = async (name, args) => {
      called.add(name);
      return call(client, name, args);
    };
    const text = 'héllo, wörld ✓ "quoted"\nline two';
    const echoed = await client.callTool({ name: 'echo', arguments: { text } });
    assert.deepEqual(echoed.structuredContent, { text });
    assert.deepEqual(echoed.content, [{ type: 'text', text }]);
    called.add('echo');

    assert.deepEqual(await tool('add', { a: 2, b: 3 }), { sum: 5 });
    assert.deepEqual(await tool('add', { a: 1.5, b: -2.25 }), { sum: -0.75 });

    const value = { n: [1, 2.5, { x: null, s: 'ü' }], t: true };
    assert.deepEqual(await tool('kv_get', { key: 'color' }), { key: 'color', found: false, value: null });
    assert.deepEqual(await tool('kv_set', { key: 'color', value: 'blue' }), { key: 'color', ok: true });
    assert.deepEqual(await tool('kv_set', { key: 'obj', value }), { key: 'obj', ok: true });
    assert.deepEqual(await tool('kv_get', { key: 'obj' }), { key: 'obj', found: true, value });
    assert.deepEqual(await tool('kv_list', {}), { entries: { color: 'blue', obj: value } });
    assert.deepEqual(await tool('kv_delete', { key: 'color' }), { key: 'color', deleted: true });
    assert.deepEqual(await tool('kv_delete', { key: 'color' }), { key: 'color', deleted: false });
    assert.deepEqual(await tool('kv_list', {}), { entries: { obj: value } });

    assert.deepEqual(await tool('sleep', { ms: 10 }), { slept_ms: 10 });
    const info = await tool('node_info', {});
    assert.equal(info.node, NODE_NAME);
    assert.equal(info.session_id, transport.sessionId);
    assert.ok(info.owner);
    assert.deepEqual([...called].sort(), [...CORE_TOOLS].sort());

    // An unknown tool fails (a JSON-RPC error or an isError result); the session lives on.
    let failed = false;
    try {
      failed = (await client.callTool({ name: 'no_such_tool', arguments: {} })).isError === true;
    } catch (e) {
      failed = e instanceof McpError;
    }
    assert.ok(failed, 'an unknown tool must fail');
    assert.deepEqual(await tool('echo', { text: 'still here' }), { text: 'still here' });
  });

  it('two clients have two sessions with their own state', async (t, ctx) => {
    const a = await connect(t, ctx);
    const b = await connect(t, ctx);
    assert.notEqual(a.transport.sessionId, b.transport.sessionId);
    await call(a.client, 'kv_set', { key: 'who', value: 'a' });
    assert.deepEqual(await call(b.client, 'kv_get', { key: 'who' }), { key: 'who', found: false, value: null });
  });

  it('reads resources and gets resources/updated for a subscription', async (t, ctx) => {
    const { client, transport, log, notes } = await connect(t, ctx);
    const { resources } = await client.listResources();
    const byUri = new Map(resources.map((r) => [r.uri, r]));
    assert.ok(byUri.has(NODE_INFO_URI) && byUri.has(SESSION_STATE_URI), [...byUri.keys()].join(' '));

    const read = await client.readResource({ uri: NODE_INFO_URI });
    assert.equal(read.contents[0].uri, NODE_INFO_URI);
    assert.equal(read.contents[0].mimeType, 'application/json');
    assert.equal(JSON.parse(onlyText(read.contents)).node, NODE_NAME);

    const updates = [];
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
      updates.push(n.params.uri);
      log.changed();
    });
    // The standalone GET stream is open (the session's unsolicited notifications go there).
    await log.waitFor((x) => x.method === 'GET' && x.status === 200, 'the standalone GET stream');
    await client.subscribeResource({ uri: SESSION_STATE_URI });
    await call(client, 'kv_set', { key: 'watched', value: [1, 'two'] });
    await log.waitFor(() => updates.includes(SESSION_STATE_URI), 'notifications/resources/updated');
    const state = JSON.parse(onlyText((await client.readResource({ uri: SESSION_STATE_URI })).contents));
    assert.equal(state.session_id, transport.sessionId);
    assert.deepEqual(state.kv, { watched: [1, 'two'] });
    await client.unsubscribeResource({ uri: SESSION_STATE_URI });
    assert.deepEqual(notes, [], 'notifications the test did not expect');

    await assert.rejects(client.readResource({ uri: 'erlmcp://no/such/resource' }), McpError);
  });

  it('gets the session_summary prompt and completes its argument', async (t, ctx) => {
    const { client } = await connect(t, ctx);
    const { prompts } = await client.listPrompts();
    const prompt = prompts.find((p) => p.name === 'session_summary');
    assert.ok(prompt, JSON.stringify(prompts));
    assert.ok(prompt.arguments?.some((a) => a.name === 'style' && !a.required), JSON.stringify(prompt));

    await call(client, 'kv_set', { key: 'topic', value: 'erlang' });
    const got = await client.getPrompt({ name: 'session_summary' });
    const [msg] = got.messages;
    assert.equal(msg.role, 'user');
    assert.equal(msg.content.type, 'text');
    assert.match(msg.content.text, /topic/);
    assert.match(msg.content.text, /erlang/);
    const detailed = await client.getPrompt({ name: 'session_summary', arguments: { style: 'detailed' } });
    assert.match(detailed.messages[0].content.text, /detailed/);

    const completed = await client.complete({
      ref: { type: 'ref/prompt', name: 'session_summary' },
      argument: { name: 'style', value: 'd' },
    });
    assert.deepEqual(completed.completion.values, ['detailed']);
  });

  it('progress and log messages from sleep arrive on its SSE stream, before the result', async (t, ctx) => {
    const { client, log } = await connect(t, ctx);
    await client.setLoggingLevel('info');
    const logs = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, async (n) => {
      logs.push(n.params);
      log.changed();
    });
    const progress = [];
    const result = await call(client, 'sleep', { ms: 300 }, { onprogress: (p) => progress.push(p) });
    assert.deepEqual(result, { slept_ms: 300 });

    const values = progress.map((p) => p.progress);
    assert.ok(values.length >= 2, `progress: ${JSON.stringify(progress)}`);
    assert.deepEqual(values, [...new Set(values)].sort((a, b) => a - b), 'progress must increase');
    assert.equal(values.at(-1), 300);
    assert.ok(progress.every((p) => p.total === 300), JSON.stringify(progress));

    const [post] = log.items.filter((x) => x.rpcMethod === 'tools/call' && x.request.params.name === 'sleep');
    assert.equal(post.contentType, 'text/event-stream', `${post}`);
    const token = post.request.params._meta.progressToken;
    const msgs = post.messages();
    const onWire = msgs.filter((m) => m.method === 'notifications/progress');
    assert.equal(onWire.length, values.length, `${post}`);
    assert.ok(onWire.every((m) => m.params.progressToken === token), `${post}`);
    assert.ok('result' in msgs.at(-1), `the result must come last: ${post}`);
    await log.waitFor(() => logs.some((p) => p.data === 'slept 300 ms'), 'the log message "slept 300 ms"');
    assert.equal(logs.find((p) => p.data === 'slept 300 ms').level, 'info');
  });

  it('cancels a running sleep (AbortSignal): notifications/cancelled, no result', async (t, ctx) => {
    const { client, log } = await connect(t, ctx);
    const abort = new AbortController();
    // With a progress callback the sleep streams: its first progress comes at once, so the
    // POST's response headers (an SSE stream) show the server has it in hand. (A request whose
    // response comes first is answered as one JSON body, headers and all at the end.)
    const sleeping = client.callTool({ name: 'sleep', arguments: { ms: 60_000 } }, undefined, {
      signal: abort.signal,
      timeout: 120_000,
      onprogress: () => {},
    });
    const post = await log.waitFor(
      (x) => x.rpcMethod === 'tools/call' && x.request.params.name === 'sleep' && x.status !== null,
      'the response headers of the sleep POST',
    );
    assert.equal(post.status, 200);
    abort.abort('test cancels');
    await assert.rejects(sleeping);
    const cancelled = await log.waitFor(
      (x) => x.rpcMethod === 'notifications/cancelled' && x.status !== null,
      'the POST of notifications/cancelled',
    );
    assert.equal(cancelled.status, 202);
    assert.equal(cancelled.request.params.requestId, post.rpcId);
    // The server ends the cancelled request's stream without a result.
    await log.waitFor(() => post.ended !== null, 'the end of the cancelled sleep stream');
    assert.equal(post.ended, 'eof', `${post}`);
    assert.ok(!post.messages().some((m) => 'result' in m || 'error' in m), `a reply to a cancelled request: ${post}`);
    assert.deepEqual(await call(client, 'sleep', { ms: 20 }), { slept_ms: 20 });
  });

  it('resumes a dropped SSE stream with Last-Event-ID and gets every event it missed', async (t, ctx) => {
    // The recording fetch cuts the sleep's POST stream (the connection too) after two progress
    // events; the SDK reconnects with GET + Last-Event-ID and the node replays the rest.
    const drop = {
      when: (x) => x.rpcMethod === 'tools/call' && x.request.params.name === 'sleep',
      afterMessages: 2,
    };
    const { client, log } = await connect(t, ctx, { drop });
    const progress = [];
    const result = await call(client, 'sleep', { ms: 500 }, { onprogress: (p) => progress.push(p.progress) });
    assert.deepEqual(result, { slept_ms: 500 });
    const [post] = log.items.filter((x) => x.rpcMethod === 'tools/call');
    assert.match(post.ended ?? '', /dropped/, `the test did not drop the stream: ${post}`);
    const resumed = log.items.filter((x) => x.method === 'GET' && x.headers['last-event-id']);
    assert.ok(resumed.length >= 1, 'the SDK did not resume with Last-Event-ID');
    assert.ok(resumed.every((x) => x.status === 200), resumed.join('\n'));
    assert.deepEqual(progress, [0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500], 'every progress event once, in order');
  });

  it('DELETE ends the session; its id then gets 404', async (t, ctx) => {
    const { client, transport, log } = await connect(t, ctx);
    const sid = transport.sessionId;
    await call(client, 'echo', { text: 'x' });
    await transport.terminateSession();
    const [del] = log.items.filter((x) => x.method === 'DELETE');
    assert.ok(del.status === 200 || del.status === 204, `${del}`);
    const res = await fetch(node.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': sid,
        'mcp-protocol-version': LATEST_PROTOCOL_VERSION,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' }),
    });
    const body = await res.text();
    assert.equal(res.status, 404, body);
    const err = JSON.parse(body);
    assert.equal(err.jsonrpc, '2.0');
    assert.equal(typeof err.error?.code, 'number', body);
    assert.ok(err.error.message, body);
  });
});
