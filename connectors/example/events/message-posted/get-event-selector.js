export default async function getEventSelector({ apiClient, parameters, credentials, connectorParameters }) {
  const me = await apiClient.get('users/me')
  return { globalWebhookKey: 'webhook-key', globalWebhookEventSelector: `user_id:${me?.id}` }
}
