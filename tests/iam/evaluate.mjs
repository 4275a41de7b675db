// Line protocol between the pytest plugin and @cloud-copilot/iam-simulate: one JSON request batch per
// stdin line, one JSON result batch per stdout line, so one node process serves a whole test session.
// A batch: {"policies": {principal: policyDocument}, "resourcePolicies": {arn: policyDocument},
//          "requests": [{principal, action, resource, context}]}
// A result: [{"result": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied" | "Error", "statements": [sid], "error"?: str}]
import { createInterface } from 'node:readline';
import { runSimulation } from '@cloud-copilot/iam-simulate';

const ACCOUNT = '123456789012';

function sids(result) {
  // The identity statements that allowed the request (for the "granted but never used" list).
  const found = new Set();
  const analyses = result.resultType === 'single' ? [result.result] : (result.results ?? []);
  for (const entry of analyses) {
    for (const match of entry?.analysis?.identityAnalysis?.allowStatements ?? []) {
      const sid = match.statement?.sid?.() ?? `#${match.statement?.index?.()}`;
      found.add(sid);
    }
  }
  return [...found];
}

async function evaluate(batch) {
  const out = [];
  for (const request of batch.requests) {
    const policy = batch.policies[request.principal];
    if (!policy) {
      out.push({ result: 'Error', statements: [], error: `no policy for principal ${request.principal}` });
      continue;
    }
    const simulation = {
      request: {
        principal: `arn:aws:iam::${ACCOUNT}:role/stepspot-local-${request.principal.replace(/[^A-Za-z0-9+=,.@_-]/g, '-')}`,
        action: request.action,
        resource: { resource: request.resource, accountId: ACCOUNT },
        contextVariables: request.context ?? {},
      },
      identityPolicies: [{ name: request.principal, policy }],
      resourcePolicy: batch.resourcePolicies?.[request.resource],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
    };
    const result = await runSimulation(simulation, {});
    if (result.resultType === 'error') {
      out.push({ result: 'Error', statements: [], error: JSON.stringify(result.errors) });
    } else {
      out.push({ result: result.overallResult, statements: sids(result) });
    }
  }
  return out;
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let reply;
  try {
    reply = await evaluate(JSON.parse(line));
  } catch (error) {
    reply = { fatal: String(error?.stack ?? error) };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
}
