// A Shopify app's webhook URL, shared by every shop that installed the app.
//
// Routes by shop and topic: `shop:{X-Shopify-Shop-Domain}:topic:{X-Shopify-Topic}`, e.g.
// `shop:example.myshopify.com:topic:orders/create`; the id is X-Shopify-Webhook-Id (the
// same on every retry of one webhook; X-Shopify-Event-Id when it is absent) and the
// payload the body. Needs the connector parameter clientSecret; connections carry
// credentials.shop (the myshopify.com domain) and credentials.accessToken. Event keys:
// orders-create, orders-paid, customers-create, app-uninstalled.
//
// Shopify's ids (orders, line items) are integers beyond 2^53, which a JSON parser working
// in doubles - JavaScript's, and switchboard's - rounds; use the payload's
// admin_graphql_api_id strings, which Shopify sends for exactly that reason.
export default async function handle({ headers, data, parameters, rawBody }) {
  if (!webhooks.verifyShopify(rawBody, headers['x-shopify-hmac-sha256'], parameters.clientSecret)) {
    return { response: { status: 401, data: 'invalid X-Shopify-Hmac-Sha256' } }
  }

  const shop = headers['x-shopify-shop-domain']
  const topic = headers['x-shopify-topic']
  if (!shop || !topic) {
    return { response: { status: 400, data: 'missing X-Shopify-Shop-Domain or X-Shopify-Topic' } }
  }
  return {
    events: [{
      selector: `shop:${shop}:topic:${topic}`,
      id: headers['x-shopify-webhook-id'] ?? headers['x-shopify-event-id'],
      payload: data,
    }],
  }
}
