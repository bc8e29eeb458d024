// Test helpers: an erlmcp node as a child process, a fetch that records every HTTP exchange,
// and failure messages that carry the exchanges and the node's log as evidence.

import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const ERLMCP_BIN = process.env.ERLMCP_BIN || path.join(ROOT, 'target', 'debug', 'erlmcp');

/** The `core` pack's tools, every one of which the clients list and call. */
export const CORE_TOOLS = ['echo', 'add', 'kv_set', 'kv_get', 'kv_list', 'kv_delete', 'sleep', 'node_info'];

/** Upper bound for one wait for something the node must do (debug build, busy 2-core machine). */
export const WAIT_MS = 20_000;
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

/** Rejects with `what` if `promise` has not settled within `ms`. */
export function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Starts `erlmcp node --http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0` and resolves once
 * it logged `listening http=ADDR` (on stderr). `stop()` sends SIGTERM to its pid and resolves with
 * the exit code (SIGKILL and null after STOP_TIMEOUT_MS).
 */
export async function startNode(name) {
  const argv = ['node', '--name', name, '--http', '127.0.0.1:0', '--tcp', '127.0.0.1:0', '--admin', '127.0.0.1:0',
    '--quic', '127.0.0.1:0', '--cluster', '127.0.0.1:0'];
  const child = spawn(ERLMCP_BIN, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', RUST_BACKTRACE: '1' },
  });
  let log = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const node = {
    name,
    pid: child.pid,
    url: null,
    log: () => log,
    tail: (n = 60) => log.split('\n').slice(-n).join('\n'),
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      if (!node.alive()) return (await exited).code;
      process.kill(child.pid, 'SIGTERM');
      try {
        return (await within(STOP_TIMEOUT_MS, `node ${name} (pid ${child.pid}) to exit after SIGTERM`, exited)).code;
      } catch {
        process.kill(child.pid, 'SIGKILL');
        await exited;
        return null;
      }
    },
  };
  const listening = new Promise((resolve, reject) => {
    const onData = (chunk) => {
      log += chunk.toString();
      const m = /listening http=(\d+\.\d+\.\d+\.\d+:\d+)/.exec(log);
      if (m && node.url === null) {
        node.url = `http://${m[1]}/mcp`;
        resolve(node);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', reject);
    exited.then(({ code, signal }) =>
      reject(new Error(`\`${ERLMCP_BIN} ${argv.join(' ')}\` exited during start-up (${code ?? signal}):\n${log}`)),
    );
  });
  try {
    return await within(START_TIMEOUT_MS, `\`erlmcp ${argv.join(' ')}\` to log "listening http=ADDR"`, listening);
  } catch (e) {
    if (node.alive()) process.kill(child.pid, 'SIGKILL');
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP exchanges

/** Complete SSE events of a body: `{id, event, data, retry}`. */
export function parseSse(text) {
  const blocks = text.replace(/\r\n?/g, '\n').split('\n\n');
  blocks.pop(); // incomplete or empty
  const events = [];
  for (const block of blocks) {
    const ev = {};
    const data = [];
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const name = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (name === 'data') data.push(value);
      else if (['id', 'event', 'retry'].includes(name)) ev[name] = value;
    }
    if (data.length) ev.data = data.join('\n');
    if (Object.keys(ev).length) events.push(ev);
  }
  return events;
}

/** One HTTP request and its response, as the response body streamed in. */
export class Exchange {
  constructor(n, method, headers, body) {
    Object.assign(this, { n, method, headers, body, status: null, respHeaders: {}, text: '', ended: null });
  }
  get contentType() {
    return (this.respHeaders['content-type'] || '').split(';')[0].trim().toLowerCase();
  }
  get request() {
    try {
      return this.body ? JSON.parse(this.body) : null;
    } catch {
      return null;
    }
  }
  get rpcMethod() {
    return this.request?.method;
  }
  get rpcId() {
    return this.request && 'method' in this.request ? this.request.id : undefined;
  }
  /** JSON-RPC messages of the response body (a JSON body, or the SSE events' data). */
  messages() {
    const parse = (s) => {
      try {
        return JSON.parse(s);
      } catch {
        return null;
      }
    };
    if (this.contentType === 'application/json') return [parse(this.text)].filter(Boolean);
    if (this.contentType === 'text/event-stream') {
      return parseSse(this.text).map((e) => (e.data ? parse(e.data) : null)).filter(Boolean);
    }
    return [];
  }
  toString() {
    const shown = ['mcp-session-id', 'mcp-protocol-version', 'mcp-method', 'last-event-id', 'accept'];
    const reqH = shown.filter((k) => this.headers[k]).map((k) => `${k}: ${this.headers[k]};`).join(' ');
    const lines = [`#${this.n} ${this.method} ${reqH}`];
    if (this.body) lines.push(`   ${this.body.slice(0, 2000)}`);
    if (this.status === null) lines.push(`   -> (no response) ${this.ended ?? ''}`);
    else {
      const respH = ['content-type', 'mcp-session-id'].filter((k) => this.respHeaders[k]);
      lines.push(`   -> ${this.status} ${respH.map((k) => `${k}: ${this.respHeaders[k]};`).join(' ')} [body ${this.ended ?? 'open'}]`);
      const text = this.text.length > 4000 ? `${this.text.slice(0, 4000)}...(truncated)` : this.text;
      if (text) lines.push(...text.replace(/\n+$/, '').split('\n').map((l) => `      ${l}`));
    }
    return lines.join('\n');
  }
}

/** Every HTTP exchange of one client; waitFor() re-checks on each change, no polling. */
export class HttpLog {
  constructor(label) {
    this.label = label;
    this.items = [];
    this.waiters = new Set();
  }
  changed() {
    for (const w of [...this.waiters]) w();
  }
  /** Resolves with the first exchange matching `pred` (or `pred()`'s truthy value). */
  waitFor(pred, what, ms = WAIT_MS) {
    const check = () => {
      if (typeof pred === 'function' && pred.length === 0) return pred();
      return this.items.find(pred);
    };
    const found = check();
    if (found) return Promise.resolve(found);
    let waiter;
    const p = new Promise((resolve) => {
      waiter = () => {
        const hit = check();
        if (hit) resolve(hit);
      };
      this.waiters.add(waiter);
    });
    return within(ms, what, p).finally(() => this.waiters.delete(waiter));
  }
  posts(method) {
    return this.items.filter((x) => x.method === 'POST' && x.rpcMethod === method);
  }
  forRequest(id) {
    return this.items.find((x) => x.method === 'POST' && x.rpcId === id);
  }
  dump() {
    return this.items.map(String).join('\n') || '(no HTTP exchanges)';
  }

  /**
   * A `fetch` for the SDK's transport that records into this log (the body is teed).
   *
   * `drop: { when(exchange), afterMessages }` cuts the first response whose exchange matches
   * `when` once its body has delivered `afterMessages` JSON-RPC messages: the connection is
   * aborted (the server sees the client go) and the SDK's read fails, as on a network drop.
   */
  fetch({ drop } = {}) {
    let dropped = false;
    return async (url, init = {}) => {
      const headers = Object.fromEntries(new Headers(init.headers ?? {}));
      const body = typeof init.body === 'string' ? init.body : init.body ? '(non-string body)' : '';
      const ex = new Exchange(this.items.length + 1, init.method ?? 'GET', headers, body);
      this.items.push(ex);
      this.changed();
      const cut = !dropped && drop?.when(ex) ? new AbortController() : null;
      if (cut) {
        dropped = true;
        init = { ...init, signal: init.signal ? AbortSignal.any([init.signal, cut.signal]) : cut.signal };
      }
      let res;
      try {
        res = await fetch(url, init);
      } catch (e) {
        ex.ended = `error: ${e?.message ?? e}`;
        this.changed();
        throw e;
      }
      ex.status = res.status;
      ex.respHeaders = Object.fromEntries(res.headers);
      if (!res.body) {
        ex.ended = 'eof';
        this.changed();
        return res;
      }
      const [mine, theirs] = res.body.tee();
      (async () => {
        const reader = mine.getReader();
        const decoder = new TextDecoder();
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            ex.text += decoder.decode(value, { stream: true });
            if (cut && !cut.signal.aborted && ex.messages().length >= drop.afterMessages) {
              ex.ended = `dropped by the test after ${drop.afterMessages} messages`;
              cut.abort(new Error(ex.ended));
            }
            this.changed();
          }
          ex.ended ??= 'eof';
        } catch (e) {
          ex.ended ??= `error: ${e?.message ?? e}`;
        }
        this.changed();
      })();
      this.changed();
      return new Response(theirs, { status: res.status, statusText: res.statusText, headers: res.headers });
    };
  }
}

/**
 * Wraps a test body: on failure the error message gets every HTTP exchange the test recorded
 * (`ctx.logs`, filled by the body) and the tail of the node's log.
 */
export function withEvidence(getNode, body) {
  return async (t) => {
    const ctx = { logs: [] };
    try {
      await body(t, ctx);
    } catch (e) {
      const parts = ctx.logs.map((l) => `--- HTTP exchanges, ${l.label}\n${l.dump()}`);
      const node = getNode();
      if (node) parts.push(`--- log of node ${node.name} (tail)\n${node.tail()}`);
      const evidence = `\n${parts.join('\n')}`;
      // A new error: reporters print a stack built when the error was made, so the original's
      // message (an assertion's diff included) goes first, the evidence after it.
      throw new Error(`${e instanceof Error ? e.message : String(e)}${evidence}`, { cause: e });
    }
  };
}
