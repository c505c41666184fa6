// A HubSpot app's webhook Target URL, shared by every portal that installed the app.
// HubSpot POSTs a JSON array of events (batched, possibly from several portals).
//
// Routes each element by portal and subscription type: `portal:{portalId}:type:{subscriptionType}`,
// e.g. `portal:62515:type:contact.creation`; the id is the element's eventId and the
// payload the element itself. Needs the connector parameters clientSecret and webhookUrl:
// v3 signatures cover the URL HubSpot called, which a script is not told, so it is
// configured. Event keys: contact-creation, contact-propertychange, deal-creation,
// deal-propertychange.
export default async function handle({ method, headers, data, parameters, rawBody }) {
  if (!parameters.webhookUrl) {
    console.warn('hubspot: connector parameter webhookUrl is not set; every request is refused')
  }
  const signed = webhooks.verifyHubSpot(rawBody, headers, parameters.clientSecret,
    { url: parameters.webhookUrl, method })
  if (!signed) {
    return { response: { status: 401, data: 'invalid X-HubSpot-Signature-v3' } }
  }
  if (!Array.isArray(data)) {
    return { response: { status: 400, data: 'expected a JSON array of events' } }
  }
  return {
    events: data.map((e) => ({
      selector: `portal:${e.portalId}:type:${e.subscriptionType}`,
      id: String(e.eventId),
      payload: e,
    })),
  }
}
