// Slack Events API Request URL, shared by every workspace that installed the app.
//
// Routes by workspace and event type: `team:{team_id}:event:{event.type}`, e.g.
// `team:T061EG9R6:event:app_mention`; the id is Slack's event_id and the payload the whole
// event_callback envelope (team_id, event_id, event_time, authorizations and the event).
// Needs the connector parameter signingSecret. Event keys: message, app-mention,
// reaction-added.
export default async function handle({ headers, data, parameters, rawBody }) {
  const signed = webhooks.verifySlack(rawBody, headers['x-slack-request-timestamp'],
    headers['x-slack-signature'], parameters.signingSecret)
  if (!signed) {
    return { response: { status: 401, data: 'invalid Slack signature' } }
  }

  // Slack checks a new Request URL by asking it to echo a challenge, in plain text.
  if (data?.type === 'url_verification') {
    return { response: { status: 200, headers: { 'content-type': 'text/plain' }, data: data.challenge } }
  }
  // Anything else without an inner event (app_rate_limited, ...) is acknowledged only.
  if (data?.type !== 'event_callback' || !data.event?.type) {
    return { response: { status: 200 } }
  }
  return {
    events: [{ selector: `team:${data.team_id}:event:${data.event.type}`, id: data.event_id, payload: data }],
    response: { status: 200 },
  }
}
