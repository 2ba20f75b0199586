"use strict";
// Drives a Toxiproxy API server with toxiproxy-node-client and checks every reply.
//
// Usage: node client_check.js API_URL UPSTREAM [LISTEN]
//   API_URL   for example http://127.0.0.1:8474
//   UPSTREAM  host:port of a TCP echo server, used to check that disable and enable act on traffic
//   LISTEN    proxy listen address, 127.0.0.1:0 by default
// Prints one line per step. Exits 0 only if every step passed, 1 if a step failed, 2 for invalid
// arguments.

const net = require("node:net");
const { Toxiproxy, ToxiproxyError } = require("toxiproxy-node-client");

const PROXY_NAME = "node_client_check";
const TOXIC_NAME = "node_latency";
const SOCKET_TIMEOUT_MS = 5000;

class CheckFailed extends Error {}

function expectEqual(label, actual, expected) {
  const actualJson = JSON.stringify(actual);
  const expectedJson = JSON.stringify(expected);
  if (actualJson !== expectedJson) {
    throw new CheckFailed(`${label}: expected ${expectedJson}, got ${actualJson}`);
  }
}

function portOf(address) {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

// Resolves with the bytes echoed back for `payload`, or rejects with the socket error.
function echoThrough(port, payload) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let received = "";
    socket.setTimeout(SOCKET_TIMEOUT_MS, () => {
      socket.destroy(new Error(`timed out after ${SOCKET_TIMEOUT_MS} ms on port ${port}`));
    });
    socket.on("connect", () => socket.write(payload));
    socket.on("data", (chunk) => {
      received += chunk.toString();
      if (received.length >= payload.length) {
        socket.end();
        resolve(received);
      }
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(received));
  });
}

// Resolves with the error code of a connection attempt, or null if the connection opened.
function connectError(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.setTimeout(SOCKET_TIMEOUT_MS, () => socket.destroy());
    socket.on("connect", () => {
      socket.destroy();
      resolve(null);
    });
    socket.on("error", (error) => resolve(error.code));
  });
}

// Resolves with the ToxiproxyError message of a request that must fail.
async function expectRejection(label, request) {
  try {
    await request();
  } catch (error) {
    if (!(error instanceof ToxiproxyError)) {
      throw new CheckFailed(`${label}: expected a ToxiproxyError, got ${error}`);
    }
    return error.message;
  }
  throw new CheckFailed(`${label}: expected the request to fail, but it succeeded`);
}

function checkProxy(label, proxy, expected) {
  expectEqual(`${label} name`, proxy.name, PROXY_NAME);
  expectEqual(`${label} upstream`, proxy.upstream, expected.upstream);
  expectEqual(`${label} listen`, proxy.listen, expected.listen);
  expectEqual(`${label} enabled`, proxy.enabled, expected.enabled);
}

function checkToxic(label, toxic, expected) {
  expectEqual(`${label} name`, toxic.name, TOXIC_NAME);
  expectEqual(`${label} type`, toxic.type, "latency");
  expectEqual(`${label} stream`, toxic.stream, "downstream");
  expectEqual(`${label} toxicity`, toxic.toxicity, expected.toxicity);
  expectEqual(`${label} attributes`, toxic.attributes, expected.attributes);
}

async function runSteps(apiUrl, upstream, listen) {
  const client = new Toxiproxy(apiUrl);
  const steps = [];
  const step = (name, action) => steps.push({ name, action });
  let proxy;
  let toxic;
  let listenAddress;

  step("version", async () => {
    const text = await client.getVersion();
    const version = JSON.parse(text).version;
    if (typeof version !== "string" || version.length === 0) {
      throw new CheckFailed(`version: expected a non-empty string in ${text}`);
    }
    return version;
  });

  step("create proxy", async () => {
    proxy = await client.createProxy({ name: PROXY_NAME, listen, upstream });
    listenAddress = proxy.listen;
    if (!listenAddress.startsWith("127.0.0.1:") || portOf(listenAddress) === 0) {
      throw new CheckFailed(
        `create proxy listen: expected 127.0.0.1 and a non-zero port, got ${listenAddress}`,
      );
    }
    if (!listen.endsWith(":0")) {
      expectEqual("create proxy listen", listenAddress, listen);
    }
    checkProxy("create proxy", proxy, { upstream, listen: listenAddress, enabled: true });
    return `listen=${listenAddress}`;
  });

  step("get proxy", async () => {
    const fetched = await client.get(PROXY_NAME);
    checkProxy("get proxy", fetched, { upstream, listen: listenAddress, enabled: true });
    return `enabled=${fetched.enabled}`;
  });

  step("list proxies", async () => {
    const proxies = await client.getAll();
    if (!(PROXY_NAME in proxies)) {
      throw new CheckFailed(`list proxies: ${PROXY_NAME} missing from ${Object.keys(proxies)}`);
    }
    const listed = proxies[PROXY_NAME];
    checkProxy("list proxies", listed, { upstream, listen: listenAddress, enabled: true });
    return `count=${Object.keys(proxies).length}`;
  });

  step("add latency toxic", async () => {
    toxic = await proxy.addToxic({
      name: TOXIC_NAME,
      type: "latency",
      stream: "downstream",
      toxicity: 1,
      attributes: { latency: 100, jitter: 0 },
    });
    const expected = { toxicity: 1, attributes: { latency: 100, jitter: 0 } };
    checkToxic("add latency toxic", toxic, expected);
    return `latency=${toxic.attributes.latency}`;
  });

  step("get toxic", async () => {
    const fetched = await proxy.getToxic(TOXIC_NAME);
    checkToxic("get toxic", fetched, { toxicity: 1, attributes: { latency: 100, jitter: 0 } });
    return `latency=${fetched.attributes.latency}`;
  });

  step("update toxic", async () => {
    // The server merges attributes, so jitter keeps its value when only latency is sent.
    const updated = await toxic.update({ attributes: { latency: 250 }, toxicity: 0.5 });
    const expected = { toxicity: 0.5, attributes: { latency: 250, jitter: 0 } };
    checkToxic("update toxic reply", updated, expected);
    checkToxic("update toxic stored", await proxy.getToxic(TOXIC_NAME), expected);
    return `latency=${updated.attributes.latency} toxicity=${updated.toxicity}`;
  });

  step("remove toxic", async () => {
    await toxic.remove();
    const message = await expectRejection("remove toxic", () => proxy.getToxic(TOXIC_NAME));
    expectEqual("remove toxic then get", message, "Request failed with status code 404");
    return "get returns 404";
  });

  step("disable proxy", async () => {
    const updated = await proxy.update({ enabled: false });
    checkProxy("disable proxy reply", updated, { upstream, listen: listenAddress, enabled: false });
    const fetched = await client.get(PROXY_NAME);
    expectEqual("disable proxy stored enabled", fetched.enabled, false);
    expectEqual("disable proxy connect", await connectError(portOf(listenAddress)), "ECONNREFUSED");
    return "connection refused";
  });

  step("enable proxy", async () => {
    const updated = await proxy.update({ enabled: true });
    checkProxy("enable proxy reply", updated, { upstream, listen: listenAddress, enabled: true });
    const fetched = await client.get(PROXY_NAME);
    expectEqual("enable proxy stored enabled", fetched.enabled, true);
    expectEqual("enable proxy echo", await echoThrough(portOf(listenAddress), "ping"), "ping");
    return "echo through the proxy";
  });

  step("delete proxy", async () => {
    await proxy.remove();
    const message = await expectRejection("delete proxy", () => client.get(PROXY_NAME));
    expectEqual("delete proxy then get", message, "Request failed with status code 404");
    const proxies = await client.getAll();
    if (PROXY_NAME in proxies) {
      throw new CheckFailed(`delete proxy: ${PROXY_NAME} still listed`);
    }
    return "get returns 404";
  });

  for (const { name, action } of steps) {
    try {
      const detail = await action();
      console.log(`ok ${name}: ${detail}`);
    } catch (error) {
      console.log(`FAIL ${name}: ${error instanceof CheckFailed ? error.message : error.stack}`);
      // Later steps depend on this one, so stop here.
      return false;
    }
  }
  return true;
}

async function main() {
  const [apiUrl, upstream, listen = "127.0.0.1:0"] = process.argv.slice(2);
  if (!apiUrl || !upstream) {
    console.error("usage: node client_check.js API_URL UPSTREAM_HOST:PORT [LISTEN_HOST:PORT]");
    process.exit(2);
  }
  const passed = await runSteps(apiUrl, upstream, listen);
  process.exit(passed ? 0 : 1);
}

main();
