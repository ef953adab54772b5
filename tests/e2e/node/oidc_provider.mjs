// A real OpenID provider for the single sign-on tests: panva's oidc-provider (OpenID Certified), in memory, on
// loopback, started by tests/e2e/oidc_provider.py.
//
//   node oidc_provider.mjs --port PORT --config FILE
//
// FILE (JSON), read at start except "accounts", which is read again at every sign-in so a test can change an
// account's claims between two sign-ins:
//   {"clients": [{"client_id", "client_secret", "redirect_uris": [...]}],
//    "accounts": {"<login>": {"email", "email_verified" (leave it out to act as Entra ID does), "groups": [...]}},
//    "id_token_alg": "RS256" | "ES256", "id_token_seconds": 300}
//
// The issuer is http://127.0.0.1:PORT. Sign-in goes through oidc-provider's development interactions (its own
// login form: "Enter any login" takes the account's login, any password); an unknown login is refused. Consent
// is given at once to the test's own clients (the provider's "first-party client" recipe), so a browser sees
// only the login form. Codes need PKCE (S256) from every client, confidential ones too.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import Provider from "oidc-provider";

const { values: args } = parseArgs({
  options: { port: { type: "string" }, config: { type: "string" } },
});
const port = Number(args.port);
if (!Number.isInteger(port) || !args.config) {
  console.error("usage: node oidc_provider.mjs --port PORT --config FILE");
  process.exit(2);
}
const configPath = args.config;
const settings = JSON.parse(readFileSync(configPath, "utf8"));
const issuer = `http://127.0.0.1:${port}`;
const scopes = "openid email profile";

function signingKey(type, options, alg) {
  const jwk = generateKeyPairSync(type, options).privateKey.export({ format: "jwk" });
  return { ...jwk, alg, use: "sig", kid: `${alg.toLowerCase()}-${randomBytes(6).toString("hex")}` };
}

function accounts() {
  return JSON.parse(readFileSync(configPath, "utf8")).accounts ?? {};
}

const provider = new Provider(issuer, {
  clients: settings.clients.map((client) => ({
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
    id_token_signed_response_alg: settings.id_token_alg ?? "RS256",
    ...client,
  })),
  // Fresh keys at every start, both algorithms tokengate accepts.
  jwks: {
    keys: [
      signingKey("rsa", { modulusLength: 2048 }, "RS256"),
      signingKey("ec", { namedCurve: "P-256" }, "ES256"),
    ],
  },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  async findAccount(_ctx, id) {
    const account = Object.hasOwn(accounts(), id) ? accounts()[id] : undefined;
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        // Read again at the time the ID token is made: the test may have changed the account since its login.
        return { sub: id, ...(accounts()[id] ?? account) };
      },
    };
  },
  claims: {
    openid: ["sub", "groups"],
    email: ["email", "email_verified"],
    profile: ["name"],
  },
  // The claims of the granted scopes go into the ID token itself (not only /userinfo): the relying party reads
  // the ID token.
  conformIdTokenClaims: false,
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(scopes);
    await grant.save();
    return grant;
  },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  ttl: {
    AuthorizationCode: 60,
    IdToken: settings.id_token_seconds ?? 300,
    AccessToken: 300,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
});

// Every refusal of the provider on its log (the test prints the log when something fails).
provider.on("server_error", (_ctx, error) => console.error("server_error", error));
for (const event of ["authorization.error", "grant.error", "userinfo.error"]) {
  provider.on(event, (_ctx, error) => console.error(event, error.message, error.error_description ?? ""));
}

const server = provider.listen(port, "127.0.0.1", () => {
  console.log(`oidc-provider ${issuer} ready`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
