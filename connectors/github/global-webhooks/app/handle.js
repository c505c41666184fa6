// A GitHub App's webhook URL, shared by every installation of the app.
//
// Routes by installation and event name: `installation:{installation.id}:event:{X-GitHub-Event}`,
// e.g. `installation:42:event:pull_request`; the id is the X-GitHub-Delivery GUID (kept
// on redelivery) and the payload the delivery's body. Needs the connector parameter
// webhookSecret; connections carry parameters.installationId. Event keys: push, issues,
// pull-request.
export default async function handle({ headers, data, parameters, rawBody }) {
  if (!webhooks.verifyGitHub(rawBody, headers['x-hub-signature-256'], parameters.webhookSecret)) {
    return { response: { status: 401, data: 'invalid X-Hub-Signature-256' } }
  }

  const event = headers['x-github-event']
  // GitHub pings a webhook when it is created; there is nothing to route.
  if (event === 'ping') {
    return { response: { status: 200, data: 'pong' } }
  }
  // App-level deliveries without an installation belong to no connection.
  if (!event || data?.installation?.id == null) {
    return { response: { status: 202, data: 'accepted, not routed: no installation' } }
  }
  return {
    events: [{
      selector: `installation:${data.installation.id}:event:${event}`,
      id: headers['x-github-delivery'],
      payload: data,
    }],
  }
}
