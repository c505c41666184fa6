// Subscribes to `app_mention` events of the workspace the connection's bot token belongs to.
export default async function getEventSelector({ apiClient }) {
  const auth = await apiClient.get('auth.test')
  if (!auth?.ok || !auth.team_id) {
    throw new Error(`Slack auth.test failed: ${auth?.error ?? 'no team_id in the answer'}`)
  }
  return { globalWebhookKey: 'events', globalWebhookEventSelector: `team:${auth.team_id}:event:app_mention` }
}
