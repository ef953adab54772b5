// Apollo Client 4 (its development build: node --conditions=development) against a live tokengate, the way a
// front end uses it: the viewer, create, a page of a connection, rotate with the cache updated from the
// payload (no refetch), delete, a FORBIDDEN partial result with errorPolicy "all", a refused token read as a
// GraphQL error with its code, and automatic persisted queries through Apollo's own link.
// Env: TOKENGATE_URL, TOKENGATE_TOKEN (an account admin's personal token). Prints one JSON object:
// {"dev": bool, "steps": [{"name", "ok", "detail"}], "warnings": [...]}: every console warning or error.
import { createHash } from "node:crypto";

import { ApolloClient, ApolloLink, CombinedGraphQLErrors, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { __DEV__ } from "@apollo/client/utilities/environment";

const url = `${process.env.TOKENGATE_URL}/graphql`;
const adminToken = process.env.TOKENGATE_TOKEN;

const warnings = [];
for (const level of ["warn", "error"]) {
  const original = console[level].bind(console);
  console[level] = (...args) => {
    warnings.push(args.map((arg) => (arg instanceof Error ? arg.message : String(arg))).join(" "));
    original(...args);
  };
}

const sent = []; // every HTTP request the clients made: [method, body or query string]
function countingFetch(input, init = {}) {
  sent.push([init.method ?? "GET", init.body ?? String(input)]);
  return fetch(input, init);
}

function makeClient(token, link) {
  const http = new HttpLink({ uri: url, fetch: countingFetch, headers: token ? { authorization: `Bearer ${token}` } : {} });
  return new ApolloClient({ link: link ? ApolloLink.from([link, http]) : http, cache: new InMemoryCache() });
}

const steps = [];
function check(name, ok, detail) {
  steps.push({ name, ok: Boolean(ok), detail: detail === undefined ? null : detail });
}

const TOKEN_FIELDS = gql`
  fragment TokenFields on ServiceToken { id name displayPrefix state expiresAt }
`;
const VIEWER = gql`query Viewer { viewer { id kind account { id name plan } user { id email } } }`;
const VIEWER_GRANTS = gql`query ViewerGrants { viewer { id grants { permissionSet allProjects } user { id license } } }`;
const TOKENS = gql`
  query Tokens { account { id serviceTokens { ...TokenFields } } }
  ${TOKEN_FIELDS}
`;
const PAGE = gql`
  query TokenPage($first: Int!, $after: String) {
    account {
      id
      serviceTokenConnection(first: $first, after: $after) {
        totalCount
        edges { cursor node { ...TokenFields } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
  ${TOKEN_FIELDS}
`;
const CREATE = gql`
  mutation CreateToken($input: CreateServiceTokenInput!) {
    createServiceToken(input: $input) { secret serviceToken { ...TokenFields } }
  }
  ${TOKEN_FIELDS}
`;
const ROTATE = gql`
  mutation RotateToken($id: ID!, $revoke: Int) {
    rotateServiceToken(id: $id, revokeOldInSeconds: $revoke) {
      secret
      serviceToken { ...TokenFields }
      previous { id state expiresAt }
    }
  }
  ${TOKEN_FIELDS}
`;
const DELETE = gql`mutation DeleteToken($id: ID!) { deleteServiceToken(id: $id) { id state } }`;
const PARTIAL = gql`query Partial { account { id name members { id } } }`;

// What a front end writes for a list it shows: the created or rotated-to token joins the cached list.
function appendToList(cache, accountId, token) {
  cache.modify({
    id: cache.identify({ __typename: "Account", id: accountId }),
    fields: {
      serviceTokens(existing = [], { toReference }) {
        return [...existing, toReference(token)];
      },
    },
  });
}

async function main() {
  check("Apollo Client runs its development build", __DEV__ === true);
  const admin = makeClient(adminToken);

  // The viewer, twice with different fields: Viewer.id lets the cache merge them instead of replacing one.
  const viewer = (await admin.query({ query: VIEWER })).data.viewer;
  check("viewer has an id and is the admin user", viewer.id && viewer.kind === "USER" && viewer.user, viewer);
  await admin.query({ query: VIEWER_GRANTS });
  const cachedViewer = admin.readQuery({ query: VIEWER });
  check("the first viewer query is still whole in the cache after the second", cachedViewer?.viewer?.account?.name === viewer.account.name);
  const accountId = viewer.account.id;

  // Create three tokens; each answer joins the cached list.
  await admin.query({ query: TOKENS });
  const created = [];
  for (const name of ["apollo-a", "apollo-b", "apollo-c"]) {
    const result = await admin.mutate({
      mutation: CREATE,
      variables: { input: { name, grants: [{ permissionSet: "ACCOUNT_VIEWER" }] } },
      update: (cache, { data }) => appendToList(cache, accountId, data.createServiceToken.serviceToken),
    });
    created.push(result.data.createServiceToken);
  }
  check("create answers a secret and an stk_ id", created.every((c) => c.secret.startsWith("tgs_") && c.serviceToken.id.startsWith("stk_")));

  // A page of the connection, then the next one from its cursor.
  const first = (await admin.query({ query: PAGE, variables: { first: 2 } })).data.account.serviceTokenConnection;
  const second = (
    await admin.query({ query: PAGE, variables: { first: 2, after: first.pageInfo.endCursor } })
  ).data.account.serviceTokenConnection;
  const paged = [...first.edges, ...second.edges].map((edge) => edge.node.id);
  check(
    "a page of two, then the rest from its endCursor",
    first.edges.length === 2 && first.pageInfo.hasNextPage && first.totalCount === 3 && new Set(paged).size === 3,
    { first: first.edges.length, second: second.edges.length, totalCount: first.totalCount },
  );

  // Rotate: the new token joins the list and the old one's new expiry comes from `previous`, with no refetch.
  const old = created[0].serviceToken;
  const rotated = (
    await admin.mutate({
      mutation: ROTATE,
      variables: { id: old.id, revoke: 3600 },
      update: (cache, { data }) => appendToList(cache, accountId, data.rotateServiceToken.serviceToken),
    })
  ).data.rotateServiceToken;
  check("rotate returns the old token as previous", rotated.previous?.id === old.id && rotated.previous.expiresAt, rotated.previous);
  const before = sent.length;
  const list = (await admin.query({ query: TOKENS, fetchPolicy: "cache-only" })).data.account.serviceTokens;
  const oldInCache = list.find((token) => token.id === old.id);
  check(
    "after rotate the cached list has the new token and the old one's expiry, without a request",
    sent.length === before && list.some((token) => token.id === rotated.serviceToken.id) && oldInCache?.expiresAt === rotated.previous.expiresAt,
    { requests: sent.length - before, listed: list.length },
  );

  // Delete: the answer's new state lands on the cached token.
  const deleted = (await admin.mutate({ mutation: DELETE, variables: { id: created[1].serviceToken.id } })).data.deleteServiceToken;
  const afterDelete = (await admin.query({ query: TOKENS, fetchPolicy: "cache-only" })).data.account.serviceTokens;
  check(
    "delete answers DELETED and the cache shows it",
    deleted.state === "DELETED" && afterDelete.find((token) => token.id === deleted.id)?.state === "DELETED",
  );

  // A token without MEMBERS:READ: members is null with FORBIDDEN, the rest of the answer is kept.
  const viewerToken = (
    await admin.mutate({
      mutation: CREATE,
      variables: { input: { name: "apollo-job-viewer", grants: [{ permissionSet: "JOB_VIEWER", allProjects: true }] } },
    })
  ).data.createServiceToken.secret;
  const partial = await makeClient(viewerToken).query({ query: PARTIAL, errorPolicy: "all" });
  check(
    "a FORBIDDEN field is null beside the data, with errorPolicy all",
    partial.data?.account?.name === viewer.account.name &&
      partial.data.account.members === null &&
      CombinedGraphQLErrors.is(partial.error) &&
      partial.error.errors[0].extensions.code === "FORBIDDEN",
    { data: partial.data, error: partial.error?.message },
  );

  // A refused token: a GraphQL error with its code (application/graphql-response+json on the 401).
  let refused = null;
  try {
    await makeClient("tgs_" + "0".repeat(54)).query({ query: VIEWER });
  } catch (error) {
    refused = error;
  }
  check(
    "a 401 is read as a GraphQL error with UNAUTHENTICATED",
    CombinedGraphQLErrors.is(refused) && refused.errors[0].extensions.code === "UNAUTHENTICATED",
    refused ? { name: refused.name, message: refused.message } : null,
  );

  // Automatic persisted queries through Apollo's link, hashed queries over GET.
  const sha256 = (text) => createHash("sha256").update(text).digest("hex");
  const persisted = () => makeClient(adminToken, new PersistedQueryLink({ sha256, useGETForHashedQueries: true }));
  const start = sent.length;
  const miss = (await persisted().query({ query: VIEWER })).data.viewer.id;
  const hit = (await persisted().query({ query: VIEWER })).data.viewer.id;
  const apq = sent.slice(start).map(([method]) => method);
  check(
    "APQ: a miss (GET), the retry with the text (POST), then a hit by hash alone (GET)",
    miss === viewer.id && hit === viewer.id && apq.join(",") === "GET,POST,GET",
    apq,
  );
}

try {
  await main();
} catch (error) {
  check("the script ran to its end", false, { name: error?.name, message: error?.message, stack: error?.stack });
}
console.log(JSON.stringify({ dev: __DEV__, steps, warnings }));
