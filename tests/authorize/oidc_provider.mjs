// A real OpenID Connect provider (panva's oidc-provider, its stock sign-in and consent pages)
// behind a FHIR-like base URL that serves a SMART configuration, for tests/authorize.
// Usage: node oidc_provider.mjs PORT REDIRECT_URI CLIENT_SECRET
import http from 'node:http';
import Provider from 'oidc-provider';

const [port, redirectUri, clientSecret] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'probe-app',
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  scopes: ['openid', 'offline_access', 'launch/patient', 'fhirUser', 'patient/*.read'],
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id }; } };
  },
});
const smart = {
  issuer,
  authorization_endpoint: `${issuer}/auth`,
  token_endpoint: `${issuer}/token`,
  token_endpoint_auth_methods_supported: ['client_secret_basic'],
  code_challenge_methods_supported: ['S256'],
  capabilities: ['launch-standalone', 'client-confidential-symmetric'],
  scopes_supported: ['openid', 'offline_access', 'launch/patient', 'fhirUser', 'patient/*.read'],
  response_types_supported: ['code'],
};
const handle = provider.callback();
http.createServer((req, res) => {
  if (req.url === '/fhir/.well-known/smart-configuration') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(smart));
    return;
  }
  if (req.url.startsWith('/fhir/')) {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"resourceType":"OperationOutcome","issue":[]}');
    return;
  }
  handle(req, res);
}).listen(Number(port), '127.0.0.1', () => console.log('ready'));
