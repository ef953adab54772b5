// The graphql-http audit suite (the GraphQL over HTTP specification's own checks) against a live tokengate.
// Every request carries the token in TOKENGATE_TOKEN, so the audits exercise the API, not the 401 path.
// Prints one JSON object: the count per status and every audit that did not pass.
import { serverAudits } from "graphql-http";

const url = `${process.env.TOKENGATE_URL}/graphql`;
const token = process.env.TOKENGATE_TOKEN;

function withToken(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

const results = await Promise.all(serverAudits({ url, fetchFn: withToken }).map((audit) => audit.fn()));
const counts = {};
for (const result of results) counts[result.status] = (counts[result.status] ?? 0) + 1;
const failed = results
  .filter((result) => result.status !== "ok")
  .map(({ id, name, status, reason }) => ({ id, name, status, reason }));
console.log(JSON.stringify({ total: results.length, counts, failed }));
