// Subscribes to `contact.creation` events of the portal the connection's token belongs to.
export default async function getEventSelector({ apiClient }) {
  const account = await apiClient.get('account-info/v3/details')
  if (account?.portalId == null) {
    throw new Error('HubSpot account-info/v3/details answered without a portalId')
  }
  return { globalWebhookKey: 'webhooks', globalWebhookEventSelector: `portal:${account.portalId}:type:contact.creation` }
}
