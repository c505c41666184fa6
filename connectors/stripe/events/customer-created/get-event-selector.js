// Subscribes to `customer.created` events of the connected account the connection's key belongs to.
export default async function getEventSelector({ apiClient }) {
  const account = await apiClient.get('account')
  if (!account?.id) {
    throw new Error('Stripe GET /v1/account answered without an account id')
  }
  return { globalWebhookKey: 'connect', globalWebhookEventSelector: `account:${account.id}:type:customer.created` }
}
