// A Stripe Connect webhook endpoint, shared by every connected account.
//
// Routes by connected account and event type: `account:{account}:type:{type}`, e.g.
// `account:acct_1032D82eZvKYlo2C:type:payment_intent.succeeded`; the id is the event's
// evt_ id and the payload the whole Event object. Needs the connector parameter
// endpointSecret (whsec_...). Event keys: payment-intent-succeeded, charge-refunded,
// customer-created.
export default async function handle({ headers, data, parameters, rawBody }) {
  if (!webhooks.verifyStripe(rawBody, headers['stripe-signature'], parameters.endpointSecret)) {
    return { response: { status: 401, data: 'invalid Stripe-Signature' } }
  }

  // Events of the platform's own account carry no `account`: they belong to no connection
  // (point the platform's account endpoint elsewhere). Acknowledged so Stripe does not retry.
  if (!data?.account || !data.type) {
    return { response: { status: 200, data: { received: true, routed: false } } }
  }
  return {
    events: [{ selector: `account:${data.account}:type:${data.type}`, id: data.id, payload: data }],
    response: { status: 200, data: { received: true } },
  }
}
