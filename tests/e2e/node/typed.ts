// Type-checked by `tsc` in make e2e: the generated documents used the way a TypeScript front end would.
import { ApolloClient, HttpLink, InMemoryCache } from "@apollo/client";
import { useFragment as fragmentData } from "./generated/fragment-masking";
import {
  CreateTokenDocument,
  PartialDocument,
  RotateTokenDocument,
  TokenFieldsFragmentDoc,
  TokenPageDocument,
  ViewerDocument,
  type TokenFieldsFragment,
  type TokenState,
} from "./generated/graphql";

export async function typedFlow(client: ApolloClient): Promise<TokenState[]> {
  const viewer = await client.query({ query: ViewerDocument });
  const viewerId: string | undefined = viewer.data?.viewer.id;
  const created = await client.mutate({
    mutation: CreateTokenDocument,
    variables: { input: { name: "typed", grants: [{ permissionSet: "ACCOUNT_VIEWER" }] } },
  });
  const secret: string | undefined = created.data?.createServiceToken?.secret;
  const page = await client.query({ query: TokenPageDocument, variables: { first: 2 } });
  const connection = page.data?.account.serviceTokenConnection;
  const total: number | undefined = connection?.totalCount;
  const nodes: TokenFieldsFragment[] = (connection?.edges ?? []).map((edge) =>
    fragmentData(TokenFieldsFragmentDoc, edge.node),
  );
  const rotated = await client.mutate({ mutation: RotateTokenDocument, variables: { id: nodes[0].id, revoke: 60 } });
  const previousExpiry: string | null | undefined = rotated.data?.rotateServiceToken?.previous?.expiresAt;
  const partial = await client.query({ query: PartialDocument, errorPolicy: "all" });
  const members: { id: string }[] | null | undefined = partial.data?.account.members;
  void [viewerId, secret, total, previousExpiry, members];
  return nodes.map((node) => node.state);
}

export const client = new ApolloClient({ link: new HttpLink({ uri: "/graphql" }), cache: new InMemoryCache() });
