// ?mode=throw throws a message holding the integration's secret (which must not reach the
// sender or the log), ?mode=loop never returns, ?mode=early answers an informational status,
// ?mode=nobody a 204 with data; anything else routes data.user.
export default async function handle({ query, data, parameters }) {
  if (query.mode === 'throw') {
    throw new Error(`cannot verify with ${parameters.signingSecret}`)
  }
  if (query.mode === 'loop') {
    for (;;) {}
  }
  if (query.mode === 'early') {
    return { response: { status: 103, data: 'too early' } }
  }
  if (query.mode === 'nobody') {
    return { response: { status: 204, headers: { 'x-kept': 'yes' }, data: 'dropped: 204 has no body' } }
  }
  return {
    events: [{ selector: `user:${data.user}`, payload: data }],
    response: { status: 202, headers: { 'content-type': 'application/json' }, data: { ok: true } },
  }
}
