// The client under test for `conformance client`: the suite starts a scenario's MCP server and runs
//   node lib/conformance_client.mjs <server url>
// (the scenario's name in MCP_CONFORMANCE_SCENARIO). This starts toolgate with that URL as its one
// MCP server, waits until toolgate's MCP client is connected to it, performs the scenario's calls
// through toolgate's HTTP API, checks what came back, and exits 0 only when it was right. The
// scenario's own checks (what the server saw toolgate's client do) are the suite's verdict.
import { startGateway, serversUp } from './harness.mjs';

const url = process.argv.at(-1);
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? '';

// What each scenario asks the client to do once connected: a tool call and the text it must give.
const calls = {
  tools_call: { tool: 'add_numbers', args: { a: 2, b: 3 }, text: 'The sum of 2 and 3 is 5' },
  'sse-retry': { tool: 'test_reconnection', args: {}, text: 'Reconnection test completed successfully' },
};

let gw;
try {
  gw = await startGateway(`
providers_from_env: false
tool_names: { prefix_mode: never }
mcp_servers:
  - { name: scenario, url: "${url}" }
`);
  await serversUp(gw, 20000, `toolgate connected to the ${scenario} server at ${url}`);
  const tools = await (await fetch(gw.url + '/v1/mcp/tools')).json();
  console.log(`tools: ${tools.data.map((t) => t.name).join(', ') || '(none)'}`);
  const call = calls[scenario];
  if (call) {
    const res = await fetch(gw.url + '/v1/mcp/tools/call', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: call.tool, arguments: call.args }), signal: AbortSignal.timeout(20000),
    });
    const body = await res.json();
    const text = JSON.stringify(body);
    console.log(`tools/call ${call.tool}: HTTP ${res.status} ${text.slice(0, 500)}`);
    if (res.status !== 200 || !text.includes(call.text)) throw new Error(`expected "${call.text}"`);
  }
  await gw.stop();
  gw = null;
  process.exit(0);
} catch (e) {
  console.error(`conformance client (${scenario}): ${e.stack ?? e}`);
  if (gw) console.error(`gateway log (end):\n${gw.logs.slice(-3000)}`);
  await gw?.stop();
  process.exit(1);
}
