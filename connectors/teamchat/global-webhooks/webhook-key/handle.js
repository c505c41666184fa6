// Every workspace's events arrive here; each is tagged with its team so that it reaches
// the subscriptions of that team's connections.
export default async function handle({ data, parameters }) {
  if (parameters.verificationToken && data?.token !== parameters.verificationToken) {
    return { response: { status: 401, data: { error: 'bad verification token' } } }
  }
  // The app checks a new URL by asking it to echo a challenge.
  if (data?.type === 'url_verification') {
    return { response: { status: 200, data: { challenge: data.challenge } } }
  }
  return {
    events: [{ selector: `team_id:${data.team_id}`, payload: data.event, id: data.event_id }],
  }
}
